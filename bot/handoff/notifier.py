"""Wake-ups for the agents' live-event streams in this process when something was recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Notifier:
    """Wakes live-event streams in this process when something was recorded (others poll the table)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Event]:
        """Yield an event that `notify` sets, for as long as the block runs."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)
