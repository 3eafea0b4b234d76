"""The live desk's clock: reply timeouts, SLA flags, honest wait updates, and the worker that runs them.

`supportbot run` runs `Timers.run` in every process; each round is safe when several processes meet (rows
are claimed with `SKIP LOCKED` and re-checked under the lock), so the busiest one simply does the work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import suppress
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.handoff.agents import AgentRepository
from bot.handoff.assignment import audit, open_assignment, requeue, tell_customer
from bot.handoff.desk import Desk
from bot.handoff.queue import estimate_wait, handling_time, queue_order, staffing
from bot.handoff.texts import estimate_text, minutes
from bot.insights import flags, metrics
from bot.states import State
from bot.storage.models import Assignment, Conversation, as_utc

log = logging.getLogger(__name__)
ESTIMATE_ROUND_SECONDS = 10.0  # how often waiting customers' estimates are re-checked
PURGE_SECONDS = 60.0  # how often expired or revoked agent tokens and event tickets are deleted


class Timers:
    """What happens because time passed, one round at a time (`tick`), or for ever (`run`)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self._last_estimate_round = 0.0
        self._last_purge = -math.inf

    async def run(self) -> None:
        """The background worker of `supportbot run`: timeouts, SLA, assignment, waiting updates."""
        wake = self.desk.worker_wake
        while True:
            try:
                await self.tick()
            except Exception:  # a database restart: log, wait, keep going
                log.exception("handoff worker round failed; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.desk.config.tick_seconds)
            wake.clear()

    async def tick(self, now: datetime | None = None) -> None:
        """One round of the background worker (also callable directly, with a given time, in tests)."""
        explicit = now is not None
        now = now or self.desk.clock()
        await self.expire_reply_timeouts(now)
        await self.flag_sla(now)
        # its own clock, read once the loads are counted: a slot freed during this round (another process)
        # is given at the moment it was free, not at the round's start (tests pass a time to control it)
        await self.desk.assign(now if explicit else None)
        if explicit or time.monotonic() - self._last_estimate_round >= ESTIMATE_ROUND_SECONDS:
            self._last_estimate_round = time.monotonic()
            await self.update_waiting(now)
        if explicit or time.monotonic() - self._last_purge >= PURGE_SECONDS:
            self._last_purge = time.monotonic()
            await self.purge_sessions(now)

    async def purge_sessions(self, now: datetime | None = None) -> int:
        """Delete agent tokens and event tickets that have expired or were revoked (log-outs, used tickets).

        Every process's worker does it now and then; the DELETE is the same in each, so it is harmless
        when two meet. A session's tickets go with it (ON DELETE CASCADE).
        """
        async with self.desk.database.session() as session:
            return await AgentRepository(session).purge(now or self.desk.clock())

    # --- reply timeouts --------------------------------------------------------------------------

    async def expire_reply_timeouts(self, now: datetime | None = None) -> list[int]:
        """Assignments without a first reply within `handoff.agent_reply_timeout` go back to the queue."""
        desk = self.desk
        now = now or desk.clock()
        cutoff = now - timedelta(seconds=desk.config.agent_reply_timeout)
        async with desk.database.session() as session:
            overdue = (
                await session.execute(
                    select(Assignment.conversation_id, Assignment.agent_id).where(
                        Assignment.ended_at.is_(None),
                        Assignment.first_response_at.is_(None),
                        Assignment.assigned_at < cutoff,
                    )
                )
            ).all()
        done = [
            conversation_id
            for conversation_id, agent_id in overdue
            if await self._time_out(conversation_id, agent_id, cutoff, now)
        ]
        if done:
            desk.deliver_and_wake(done)
        return done

    async def _time_out(self, conversation_id: int, agent_id: int, cutoff: datetime, now: datetime) -> bool:
        """Requeue one unanswered assignment (and send its agent away, if so configured); False if moot."""
        desk = self.desk
        async with desk.transaction() as session:
            conversation = (
                await session.execute(
                    select(Conversation)
                    .where(Conversation.id == conversation_id)
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            assignment = await open_assignment(session, conversation_id)
            if (
                conversation is None
                or assignment is None
                or assignment.agent_id != agent_id
                or assignment.first_response_at is not None
                or as_utc(assignment.assigned_at) >= cutoff
                or conversation.state != State.WITH_AGENT
            ):
                return False  # answered, moved or handled by another process meanwhile
            await requeue(session, conversation, "system", "agent_reply_timeout", agent_id, now=now)
            agent = await AgentRepository(session).get(agent_id, lock=True)
            if agent is not None and desk.config.away_on_timeout and agent.status == "online":
                agent.status = "away"
                agent.status_changed_at = now
                audit(
                    session,
                    None,
                    "agent_status",
                    "system",
                    agent.id,
                    status="away",
                    previous="online",
                    reason="agent_reply_timeout",
                )
        log.warning(
            "conversation %s: agent %s did not reply within %g s; back to the queue",
            conversation_id,
            agent_id,
            desk.config.agent_reply_timeout,
        )
        return True

    # --- SLA -------------------------------------------------------------------------------------

    async def flag_sla(self, now: datetime | None = None) -> list[int]:
        """Flag conversations waiting past `handoff.sla_first_response` without an agent's answer."""
        desk = self.desk
        now = now or desk.clock()
        cutoff = now - timedelta(seconds=desk.config.sla_first_response)
        overdue = (
            Conversation.state.in_([State.WAITING, State.WITH_AGENT]),
            Conversation.first_response_at.is_(None),
            Conversation.sla_breached_at.is_(None),
            Conversation.handoff_at < cutoff,
        )
        async with desk.database.session() as session:
            if not (await session.execute(select(Conversation.id).where(*overdue).limit(1))).first():
                return []
        flagged = []
        async with desk.transaction() as session:
            claimed = select(Conversation).where(*overdue).with_for_update(skip_locked=True)
            for conversation in (await session.execute(claimed)).scalars().all():
                conversation.sla_breached_at = now
                waited = (now - as_utc(conversation.handoff_at)).total_seconds()
                audit(
                    session,
                    conversation.id,
                    "sla_breached",
                    "system",
                    None,
                    waited_seconds=round(waited),
                    threshold_seconds=desk.config.sla_first_response,
                    state=conversation.state,
                )
                await flags.sla_breached(session, desk.settings, conversation, now, waited)  # Code Red
                flagged.append(conversation.id)
                metrics.sla_breach(conversation.state)
        if flagged:
            log.warning("SLA first response breached: conversations %s", flagged)
            desk.notifier.notify()
        return flagged

    # --- what waiting customers are told ---------------------------------------------------------

    async def update_waiting(self, now: datetime | None = None) -> list[int]:
        """Tell waiting customers when agents are back, or when their estimated wait has grown."""
        desk = self.desk
        now = now or desk.clock()
        open_now = desk.hours.is_open(now)
        async with desk.database.session() as session:
            queued = (
                select(Conversation)
                .where(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
                .order_by(*queue_order())
            )
            waiting = (await session.execute(queued)).scalars().all()
            if not waiting:
                return []
            staff = await staffing(session)
            handling, _ = await handling_time(
                session, desk.config.estimate_sample, desk.config.default_handling_time
            )
        told = []
        for position, row in enumerate(waiting, start=1):
            estimate = estimate_wait(position, handling, staff)
            if row.closed_notice_at is not None:
                if open_now or staff.online_agents > 0:
                    if await self._tell_waiting(row.id, now, estimate, position, reopened=True):
                        told.append(row.id)
            elif self._grew(row.estimate_told_seconds, row.estimate_told_at, estimate, now):
                if await self._tell_waiting(row.id, now, estimate, position, reopened=False):
                    told.append(row.id)
        if told:
            desk.deliver_and_wake(told)
        return told

    def _grew(self, told: float | None, told_at: datetime | None, estimate: float, now: datetime) -> bool:
        if told is None or told_at is None:
            return False
        if (now - as_utc(told_at)).total_seconds() < self.desk.config.estimate_update_interval:
            return False
        return estimate >= told * 1.25 and estimate - told >= 60 and minutes(estimate) > minutes(told)

    async def _tell_waiting(
        self, conversation_id: int, now: datetime, estimate: float, position: int, reopened: bool
    ) -> bool:
        async with self.desk.database.session() as session:
            conversation = (
                await session.execute(
                    select(Conversation)
                    .where(Conversation.id == conversation_id)
                    .with_for_update(skip_locked=True)
                )
            ).scalar_one_or_none()
            if conversation is None or conversation.state != State.WAITING or conversation.assigned_agent_id:
                return False
            if reopened:
                if conversation.closed_notice_at is None:
                    return False  # another process told them
                conversation.closed_notice_at = None
                await tell_customer(
                    session,
                    conversation,
                    "reopened",
                    position=position,
                    estimate=estimate_text(estimate, conversation.language),
                )
            else:
                if not self._grew(
                    conversation.estimate_told_seconds, conversation.estimate_told_at, estimate, now
                ):
                    return False
                await tell_customer(
                    session, conversation, "estimate_grew", position=position, minutes=minutes(estimate)
                )
            audit(
                session,
                conversation.id,
                "wait_update",
                "system",
                None,
                estimate_seconds=round(estimate),
                position=position,
                reason="reopened" if reopened else "estimate_grew",
            )
            conversation.estimate_told_seconds = estimate
            conversation.estimate_told_at = now
        return True
