"""The live desk's common ground: what its parts share and what follows each of their commits.

The engine's side (bot/handoff/intake.py), the agents' moves (moves.py) and the timers (timers.py) all
work through one `Desk`: its settings, database, business hours, context providers and clock; its
transactions (one at a time on SQLite, row locks on PostgreSQL); its background tasks; and, after a
commit, the delivery of what was queued for the customer, the wake-up of the live-event streams and of the
worker, and the assigner that hands waiting conversations to agents with room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Channel
from bot.config import Settings
from bot.handoff.assignment import Assigned, assign_waiting, serialize
from bot.handoff.hours import BusinessHours
from bot.handoff.notifier import Notifier
from bot.handoff.providers import ContextProvider, providers_from_settings
from bot.handoff.queue import Staffing, estimate_wait, handling_time, staffing, waiting_count
from bot.storage.database import Database
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


class Desk:
    """The state and plumbing the live desk's parts share, over the shared database (many processes)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        channels: dict[str, Channel] | None = None,
        deliver: Callable[[int], Awaitable[object]] | None = None,
        providers: Sequence[ContextProvider] = (),
    ) -> None:
        self.settings = settings
        self.config = settings.handoff
        self.database = database
        self.channels: dict[str, Channel] = channels if channels is not None else {}
        self.deliver = deliver
        self.hours = BusinessHours.from_settings(self.config.business_hours, self.config.timezone)
        self._http: httpx.AsyncClient | None = None
        self.providers: list[ContextProvider] = [
            *providers_from_settings(self.config.context_providers, self._client),
            *providers,
        ]
        self.notifier = Notifier()
        self.worker_wake = asyncio.Event()  # set after every move: the worker looks again at once
        self._tasks: set[asyncio.Task[Any]] = set()
        self._serial = asyncio.Lock()
        self.clock: Callable[[], datetime] = utcnow  # replaceable in tests (business hours, timeouts)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    def add_provider(self, provider: ContextProvider) -> None:
        """Add a context provider (e.g. a `CallableProvider`) to those asked at every handoff."""
        self.providers.append(provider)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction for moves between people; one at a time on SQLite, row locks on PostgreSQL."""
        if self.database.is_sqlite:
            async with self._serial, self.database.session() as session:
                await serialize(session, True)
                yield session
        else:
            async with self.database.session() as session:
                yield session

    # --- background work -------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, Any], name: str = "handoff") -> asyncio.Task[Any]:
        """Run `work` in the background; `drain` waits for it, `close` cancels it, a failure is logged."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("handoff task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for background work started by earlier calls (provider fetches, deliveries)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the background work and close the providers' HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- after a commit --------------------------------------------------------------------------

    def on_commit(self, session: AsyncSession, callback: Callable[[], object]) -> None:
        """Call `callback` soon after `session` commits (the engine's transaction, not ours)."""

        def fire(_: Any) -> None:
            with suppress(RuntimeError):  # no loop: nothing to wake
                asyncio.get_running_loop().call_soon(callback)

        event.listen(session.sync_session, "after_commit", fire, once=True)

    def deliver_and_wake(self, conversation_ids: Iterable[int]) -> None:
        """After a commit: deliver what was queued for these conversations, wake the streams and the worker."""
        if self.deliver is not None:
            for conversation_id in sorted(set(conversation_ids)):
                self.spawn(self._deliver_one(conversation_id), name=f"deliver-{conversation_id}")
        self.notifier.notify()
        self.worker_wake.set()

    async def _deliver_one(self, conversation_id: int) -> None:
        assert self.deliver is not None
        try:
            await self.deliver(conversation_id)
        except Exception:  # the outbox's own loop retries; the message is stored
            log.exception("delivering to conversation %s failed; the outbox will retry", conversation_id)

    # --- the queue -------------------------------------------------------------------------------

    async def assign(self, now: datetime | None = None) -> list[Assigned]:
        """Give waiting conversations to online agents with room; safe to run in many processes at once."""
        async with self.database.session() as session:  # read-only look first: usually there is nothing to do
            staff = await staffing(session)
            if staff.free <= 0 or await waiting_count(session) == 0:
                return []
        async with self.transaction() as session:
            done = await assign_waiting(session, self.database.is_sqlite, now, clock=self.clock)
        if done:
            log.info("assigned %s", ", ".join(f"#{a.conversation_id}->{a.agent_login}" for a in done))
            self.deliver_and_wake([a.conversation_id for a in done])
        return done

    async def queue_summary(self, now: datetime | None = None) -> dict[str, Any]:
        """Queue length, staffing, business hours and the wait the next customer would be told."""
        now = now or self.clock()
        async with self.database.session() as session:
            staff: Staffing = await staffing(session)
            waiting = await waiting_count(session)
            handling, sample = await handling_time(
                session, self.config.estimate_sample, self.config.default_handling_time
            )
        back = self.hours.next_open(now)
        return {
            "waiting": waiting,
            "online_agents": staff.online_agents,
            "capacity": staff.capacity,
            "free_slots": staff.free,
            "open": self.hours.is_open(now),
            "next_open": back.isoformat() if back else None,
            "handling_time_seconds": round(handling),
            "handling_time_sample": sample,
            "estimated_wait_for_next_seconds": round(estimate_wait(waiting + 1, handling, staff)),
        }
