"""The seam between the conversation engine (and the running service) and the live-agent side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Conversation, Message


@dataclass(frozen=True)
class QueueTicket:
    """What the customer is told on handoff: their place in the queue and, if known, the wait."""

    position: int
    estimated_wait_seconds: float | None = None
    notice: str | None = None  # said after the position: the wait, or when agents are back


class Handoff(Protocol):
    """What the engine needs from the handoff side; the queue knows nothing of messengers."""

    # "now" for the handoff side: resolutions are stamped with it and CSAT's window is read on it
    clock: Callable[[], datetime]

    async def enqueue(
        self, session: AsyncSession, conversation: Conversation, context: dict[str, Any], reason: str
    ) -> QueueTicket:
        """Put a conversation (already in state waiting) in the queue; return its ticket."""
        ...

    async def customer_message(
        self, session: AsyncSession, conversation: Conversation, message: Message
    ) -> None:
        """A customer wrote while waiting or with an agent: route it to the human side."""
        ...

    async def cancelled(self, session: AsyncSession, conversation: Conversation) -> None:
        """The customer left the queue (back to the bot)."""
        ...

    # what the running service needs besides (bot/app.py, bot/web/app.py)

    def routers(self) -> Sequence[APIRouter]:
        """The HTTP routes this side serves (the live desk: the agent API); none if it has no agents."""
        ...

    async def start(self) -> None:
        """Start the background work (`supportbot run`): timers, assignment, whatever this side needs."""
        ...

    async def close(self) -> None:
        """Stop the background work and release what the handoff side holds (tasks, HTTP clients)."""
        ...
