"""The test channel: messages from its customers, and a channel that records the replies sent to them."""

from __future__ import annotations

import uuid
from typing import Any

from bot.adapters.base import Channel, DeliveryTarget
from bot.errors import SendError
from bot.messages import IncomingMessage, OutgoingReply


class RecordingChannel(Channel):
    """A channel that records what it was asked to send; can fail on demand."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.sent: list[tuple[DeliveryTarget, OutgoingReply]] = []
        self.fail_next: list[SendError] = []

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append((target, reply))
        return f"p{len(self.sent)}"


def incoming(
    text: str = "", *, customer: str = "c1", msg_id: str | None = None, **kwargs: Any
) -> IncomingMessage:
    """Build a message from customer `customer` on the test channel."""
    return IncomingMessage(
        channel="test",
        chat_id=customer,
        customer_id=customer,
        text=text,
        platform_message_id=msg_id or uuid.uuid4().hex,
        **kwargs,
    )
