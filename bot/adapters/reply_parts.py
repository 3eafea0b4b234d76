"""Send a reply that a platform needs as several messages, resuming after the parts already delivered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bot.errors import SendError

Part = TypeVar("Part")


class PartTracker:
    """Remembers, per outbox message, how many of its parts went out, so the outbox's retry of a reply
    that failed half-way sends only the rest (the customer never sees a part twice)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._sent: dict[int, int] = {}  # outbox message id -> parts already delivered
        self._limit = limit

    async def send(
        self, key: int | None, parts: Sequence[Part], send_one: Callable[[Part], Awaitable[str | None]]
    ) -> str | None:
        """Send the parts not yet delivered for `key`; return the last platform id. Re-raise SendError."""
        done = self._sent.get(key, 0) if key is not None else 0
        last: str | None = None
        try:
            for number, part in enumerate(parts):
                if number < done:
                    continue
                last = await send_one(part)
                if key is not None:
                    self._sent[key] = number + 1
        except SendError as exc:
            if exc.permanent and key is not None:
                self._sent.pop(key, None)
            elif len(self._sent) > self._limit:  # forget replies the outbox gave up on long ago
                self._sent.clear()
            raise
        if key is not None:
            self._sent.pop(key, None)
        return last
