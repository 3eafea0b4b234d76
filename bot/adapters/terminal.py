"""The terminal channel: `supportbot chat` reads lines and prints replies."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.adapters.base import Channel, DeliveryTarget
from bot.messages import IncomingMessage, OutgoingReply


class TerminalChannel(Channel):
    """Prints replies to a stream; buttons are numbered so a typed number presses one."""

    name = "terminal"

    def __init__(self, stream: TextIO | None = sys.stdout) -> None:
        self.stream = stream  # None: the caller renders replies itself (chat --json)
        self.last_buttons: dict[str, str] = {}
        self._sent = 0

    def parse(self, line: str, customer_id: str = "local", language: str | None = None) -> IncomingMessage:
        """Turn a typed line into a message; a number picks a button from the last reply."""
        text = line.rstrip("\n")
        payload = self.last_buttons.get(text.strip())
        self.last_buttons = {}
        return IncomingMessage(
            channel=self.name,
            chat_id=customer_id,
            customer_id=customer_id,
            text="" if payload else text,
            payload=payload,
            language_hint=language,
            display_name="Terminal user",
        )

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        self._sent += 1
        self.last_buttons = {str(i): b.payload for i, b in enumerate(reply.buttons, start=1)}
        if self.stream is not None:
            lines = [f"bot> {reply.text}"]
            lines += [f"     [{i}] {b.title}" for i, b in enumerate(reply.buttons, start=1)]
            print("\n".join(lines), file=self.stream, flush=True)
        return f"terminal-{self._sent}"
