"""The live-agent desk as the service runs it: the engine's `Handoff`, with agents, moves and timers.

`LiveHandoff` is a `Desk` (bot/handoff/desk.py: settings, database, transactions, background work) with
its three parts: `intake` (what the engine calls, bot/handoff/intake.py), `moves` (what agents do,
moves.py) and `timers` (what time does, timers.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Channel
from bot.config import Settings
from bot.handoff import api as agent_api
from bot.handoff.base import QueueTicket
from bot.handoff.desk import Desk
from bot.handoff.intake import Intake
from bot.handoff.moves import Moves
from bot.handoff.providers import ContextProvider
from bot.handoff.timers import Timers
from bot.storage.database import Database
from bot.storage.models import Conversation, Message


class LiveHandoff(Desk):
    """The engine's Handoff and the agents' desk, over the shared database (safe with many processes)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        channels: dict[str, Channel] | None = None,
        deliver: Callable[[int], Awaitable[object]] | None = None,
        providers: Sequence[ContextProvider] = (),
    ) -> None:
        super().__init__(settings, database, channels, deliver, providers)
        self.intake = Intake(self)
        self.moves = Moves(self)
        self.timers = Timers(self)
        self._worker: asyncio.Task[None] | None = None

    # --- the engine's side (the Handoff protocol) ------------------------------------------------

    async def enqueue(
        self, session: AsyncSession, conversation: Conversation, context: dict[str, Any], reason: str
    ) -> QueueTicket:
        return await self.intake.enqueue(session, conversation, context, reason)

    async def customer_message(
        self, session: AsyncSession, conversation: Conversation, message: Message
    ) -> None:
        await self.intake.customer_message(session, conversation, message)

    async def cancelled(self, session: AsyncSession, conversation: Conversation) -> None:
        await self.intake.cancelled(session, conversation)

    # --- the service's side ----------------------------------------------------------------------

    def routers(self) -> Sequence[APIRouter]:
        """The agent API (bot/handoff/api/), whose routes find this desk as the service's handoff."""
        return [agent_api.router]

    async def start(self) -> None:
        """Run the timers' worker (timeouts, SLA, assignment, waiting updates) until `close`."""
        if self._worker is None:
            # not `spawn`ed: `drain` waits for passing work, and the worker never ends by itself
            self._worker = asyncio.get_running_loop().create_task(self.timers.run(), name="handoff")

    async def close(self) -> None:
        """Stop the worker and the background work, and close the providers' HTTP client."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await super().close()
