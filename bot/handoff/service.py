"""The live-agent desk: the engine's Handoff, plus every move agents make, timeouts, SLA and honest waiting.

Each operation is one short transaction; messages to the customer are stored in it and delivered by the
outbox right after the commit. Nothing here waits on the network inside a transaction: context providers
run after the handoff has been committed and answered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Channel, DeliveryTarget, WindowedChannel, ensure_free_form_allowed
from bot.config import Settings
from bot.errors import SendError, SupportBotError
from bot.handoff.agents import AgentRepository, has_role
from bot.handoff.assignment import (
    Assigned,
    HandoffConflict,
    assign_waiting,
    audit,
    end_assignment,
    give,
    has_room,
    open_assignment,
    requeue,
    serialize,
    tell_customer,
)
from bot.handoff.base import QueueTicket
from bot.handoff.context import customer_info
from bot.handoff.hours import BusinessHours
from bot.handoff.providers import ContextProvider, fetch_all, is_vip, providers_from_settings
from bot.handoff.queue import (
    Staffing,
    estimate_wait,
    handling_time,
    queue_order,
    queue_position,
    staffing,
    waiting_count,
)
from bot.handoff.texts import estimate_text, minutes, text, when_text
from bot.insights import csat
from bot.messages import OutgoingReply
from bot.states import HUMAN_STATES, State
from bot.storage.database import Database
from bot.storage.models import Agent, Assignment, Conversation, Customer, Event, Message, as_utc, utcnow
from bot.storage.repositories import ConversationRepository, MessageRepository

log = logging.getLogger(__name__)
ESTIMATE_ROUND_SECONDS = 10.0  # how often waiting customers' estimates are re-checked
PURGE_SECONDS = 60.0  # how often expired or revoked agent tokens and event tickets are deleted


class NotFound(SupportBotError):
    """No such conversation or agent."""


class Forbidden(SupportBotError):
    """The agent's role does not allow this move."""


class TemplateFailed(SupportBotError):
    """The platform refused the re-engagement template (the message says why)."""


class Notifier:
    """Wakes live-event streams in this process when something was recorded (others poll the table)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)


@dataclass
class StatusChange:
    status: str
    assigned: list[Assigned] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


class LiveHandoff:
    """The engine's Handoff and the agents' desk, over the shared database (safe with many processes)."""

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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._serial = asyncio.Lock()
        self._wake = asyncio.Event()
        self._last_estimate_round = 0.0
        self._last_purge = -math.inf
        self.clock: Callable[[], datetime] = utcnow  # replaceable in tests (business hours, timeouts)

    # --- plumbing --------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    def add_provider(self, provider: ContextProvider) -> None:
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

    def spawn(self, work: Coroutine[Any, Any, Any], name: str = "handoff") -> asyncio.Task[Any]:
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

    def _on_commit(self, session: AsyncSession, callback: Callable[[], object]) -> None:
        def fire(_: Any) -> None:
            with suppress(RuntimeError):  # no loop: nothing to wake
                asyncio.get_running_loop().call_soon(callback)

        event.listen(session.sync_session, "after_commit", fire, once=True)

    def _after(self, conversation_ids: set[int] | list[int]) -> None:
        """After a commit: deliver what was queued for these conversations and wake the event streams."""
        if self.deliver is not None:
            for conversation_id in sorted(set(conversation_ids)):
                self.spawn(self._deliver_one(conversation_id), name=f"deliver-{conversation_id}")
        self.notifier.notify()
        self._wake.set()

    async def _deliver_one(self, conversation_id: int) -> None:
        assert self.deliver is not None
        try:
            await self.deliver(conversation_id)
        except Exception:  # the outbox's own loop retries; the message is stored
            log.exception("delivering to conversation %s failed; the outbox will retry", conversation_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the engine's side (Handoff protocol) ----------------------------------------------------

    async def enqueue(
        self, session: AsyncSession, conversation: Conversation, context: dict[str, Any], reason: str
    ) -> QueueTicket:
        """Queue a conversation (inside the engine's transaction) and say honestly how long it may take."""
        now = self.clock()
        stored = dict(context)
        stored["providers"] = {provider.name: {"status": "pending"} for provider in self.providers}
        conversation.handoff_context = stored
        conversation.handoff_at = now
        conversation.first_response_at = None
        conversation.sla_breached_at = None
        conversation.closed_notice_at = None
        conversation.assigned_agent_id = None
        conversation.priority = self.priority_for(reason, {})
        audit(session, conversation.id, "queued", "bot", reason=reason, priority=conversation.priority)
        await session.flush()
        position = await queue_position(session, conversation)
        staff = await staffing(session)
        language = conversation.language
        estimate: float | None = None
        if staff.online_agents == 0 and not self.hours.is_open(now):
            back = self.hours.next_open(now)
            notice = (
                text("closed", language, when=when_text(back, language))
                if back
                else text("closed_no_agents", language)
            )
            conversation.closed_notice_at = now
        else:
            handling, _ = await handling_time(
                session, self.config.estimate_sample, self.config.default_handling_time
            )
            estimate = estimate_wait(position, handling, staff)
            notice = estimate_text(estimate, language)
        conversation.estimate_told_seconds = estimate
        conversation.estimate_told_at = now
        conversation_id = conversation.id
        self._on_commit(
            session, lambda: self.spawn(self._after_handoff(conversation_id), name="after-handoff")
        )
        return QueueTicket(position, estimate, notice)

    async def customer_message(
        self, session: AsyncSession, conversation: Conversation, message: Message
    ) -> None:
        """A customer wrote while waiting or with an agent: it is for the agent (a live event)."""
        audit(
            session,
            conversation.id,
            "customer_message_for_agent",
            "customer",
            conversation.assigned_agent_id,
            message_id=message.id,
            text=message.text[:1000],
            attachments=[a.get("kind") for a in message.attachments or []],
        )
        self._on_commit(session, self.notifier.notify)

    async def cancelled(self, session: AsyncSession, conversation: Conversation) -> None:
        """The customer went back to the bot while waiting."""
        ended = await end_assignment(session, conversation.id, "customer_left")
        audit(session, conversation.id, "left_queue", "customer", ended.agent_id if ended else None)
        self._on_commit(session, self.notifier.notify)

    def priority_for(self, reason: str | None, providers: dict[str, dict[str, Any]]) -> int:
        """The queue bump: `handoff.priority.complaint` for complaints, `.vip` for VIP customers (summed)."""
        bumps = self.config.priority
        priority = 0
        if reason == "complaint":
            priority += bumps.get("complaint", 0)
        if is_vip(providers):
            priority += bumps.get("vip", 0)
        return priority

    async def _after_handoff(self, conversation_id: int) -> None:
        if self.providers:
            await self.refresh_context(conversation_id)
        await self.assign()

    async def refresh_context(self, conversation_id: int) -> dict[str, dict[str, Any]]:
        """Ask the context providers (each within its timeout) and put their answers on the card."""
        async with self.database.session() as session:
            conversation = await session.get(Conversation, conversation_id)
            customer = await session.get(Customer, conversation.customer_id) if conversation else None
            if conversation is None or customer is None:
                return {}
            info = customer_info(conversation, customer)
        results = await fetch_all(self.providers, info)
        async with self.database.session() as session:
            conversation = await ConversationRepository(session).get(conversation_id, lock=True)
            if conversation is None:
                return results
            stored = dict(conversation.handoff_context or {})
            stored["providers"] = results
            conversation.handoff_context = stored
            audit(
                session,
                conversation.id,
                "context_updated",
                "system",
                conversation.assigned_agent_id,
                providers={name: result["status"] for name, result in results.items()},
            )
            if conversation.state in HUMAN_STATES:
                priority = self.priority_for(stored.get("reason"), results)
                if priority != conversation.priority:
                    audit(
                        session,
                        conversation.id,
                        "priority_changed",
                        "system",
                        None,
                        priority=priority,
                        previous=conversation.priority,
                        reason="vip" if is_vip(results) else "providers",
                    )
                    conversation.priority = priority
        self.notifier.notify()
        return results

    # --- assignment ------------------------------------------------------------------------------

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
            self._after([a.conversation_id for a in done])
        return done

    async def set_status(self, agent_id: int, status: str, actor: str) -> StatusChange:
        """Online: waiting conversations are assigned at once. Offline: the agent's return to the queue."""
        async with self.transaction() as session:
            agent = await AgentRepository(session).get(agent_id, lock=True)
            if agent is None:
                raise NotFound(f"no agent with id {agent_id}")
            if agent.status != status:
                audit(session, None, "agent_status", actor, agent.id, status=status, previous=agent.status)
                agent.status = status
                agent.status_changed_at = self.clock()
        change = StatusChange(status)
        if status == "offline":
            change.requeued = await self._requeue_all_of(agent_id, actor, "agent_offline")
        self.notifier.notify()
        change.assigned = await self.assign()
        return change

    async def _requeue_all_of(self, agent_id: int, actor: str, reason: str) -> list[int]:
        async with self.database.session() as session:
            ids = (
                (
                    await session.execute(
                        select(Assignment.conversation_id).where(
                            Assignment.agent_id == agent_id, Assignment.ended_at.is_(None)
                        )
                    )
                )
                .scalars()
                .all()
            )
        done = []
        for conversation_id in ids:
            async with self.transaction() as session:
                conversation = await ConversationRepository(session).get(conversation_id, lock=True)
                if conversation is None or conversation.assigned_agent_id != agent_id:
                    continue
                if conversation.state != State.WITH_AGENT:
                    await end_assignment(session, conversation_id, reason)
                    continue
                await requeue(session, conversation, actor, reason, agent_id, now=self.clock())
                done.append(conversation_id)
        if done:
            self._after(done)
        return done

    async def accept(self, conversation_id: int, agent_id: int) -> Conversation:
        """Take a waiting conversation (capacity permitting); accepting one already yours is a no-op."""
        async with self.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            if conversation.state == State.WITH_AGENT and conversation.assigned_agent_id == agent.id:
                audit(session, conversation.id, "accepted", actor(agent), agent.id)
                return conversation
            if conversation.state != State.WAITING:
                raise HandoffConflict(await self._describe(session, conversation, "cannot be taken"))
            locked = await AgentRepository(session).get(agent.id, lock=True)
            assert locked is not None
            if not await has_room(session, locked):
                raise HandoffConflict(
                    f"you already hold {locked.capacity} conversation(s), your capacity; resolve or transfer one first"
                )
            await give(session, conversation, locked, actor(locked), "take", "taken", self.clock())
        self._after([conversation_id])
        return conversation

    async def reply(self, conversation_id: int, agent_id: int, body: str) -> Message:
        """Send the agent's message to the customer's channel through the outbox."""
        async with self.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            if conversation.state != State.WITH_AGENT or conversation.assigned_agent_id != agent.id:
                raise HandoffConflict(
                    await self._describe(
                        session,
                        conversation,
                        "is not yours to answer: accept it (or have it transferred) first",
                    )
                )
            channel = self.channels.get(conversation.channel)
            if channel is not None:
                ensure_free_form_allowed(channel, conversation.last_customer_message_at)
            row = await MessageRepository(session).add_outbound(
                conversation, OutgoingReply(body), sender="agent", agent_id=agent.id
            )
            now = self.clock()
            if conversation.first_response_at is None:
                conversation.first_response_at = now
            assignment = await open_assignment(session, conversation.id)
            if assignment is not None and assignment.first_response_at is None:
                assignment.first_response_at = now
            audit(session, conversation.id, "agent_message", actor(agent), agent.id, message_id=row.id)
        self._after([conversation_id])
        return row

    async def send_template(self, conversation_id: int, agent_id: int) -> Message:
        """Outside a messaging window (WhatsApp's 24 hours): send the channel's re-engagement template.

        The row is stored (status "sending", which the outbox leaves alone) before the platform is called,
        then marked sent or failed; free text can follow once the customer answers.
        """
        async with self.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            if conversation.state != State.WITH_AGENT or conversation.assigned_agent_id != agent.id:
                raise HandoffConflict(
                    await self._describe(
                        session, conversation, "is not yours: accept it (or have it transferred) first"
                    )
                )
            channel = self.channels.get(conversation.channel)
            if not isinstance(channel, WindowedChannel):
                raise HandoffConflict(
                    f"the {conversation.channel} channel {'is not served by this process' if channel is None else 'has no templates'}"
                )
            customer = await session.get(Customer, conversation.customer_id)
            assert customer is not None
            row = await MessageRepository(session).add_outbound(
                conversation, OutgoingReply("[re-engagement template]"), sender="agent", agent_id=agent.id
            )
            row.status, row.next_attempt_at = "sending", None
            target = DeliveryTarget(
                conversation.channel,
                conversation.chat_id,
                customer.external_id,
                conversation.id,
                conversation.language,
                row.id,
            )
            audit(session, conversation.id, "template_sent", actor(agent), agent.id, message_id=row.id)
        try:
            platform_id = await channel.send_template(target)
        except SendError as exc:
            error: str | None = str(exc)
            platform_id = None
        else:
            error = None
        async with self.database.session() as session:
            if error is None:
                await MessageRepository(session).mark_sent([(row.id, platform_id)])
            stored = await session.get(Message, row.id)  # loaded after the mark: as it now is
            assert stored is not None
            if error is not None:
                stored.status, stored.last_error = "failed", error[:2000]
        if error is not None:
            raise TemplateFailed(error)
        return stored

    async def note(self, conversation_id: int, agent_id: int, body: str) -> int:
        """An internal note on the conversation: seen by agents, never sent to the customer."""
        async with self.database.session() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            row = Event(
                conversation_id=conversation.id,
                kind="note",
                actor=actor(agent),
                agent_id=conversation.assigned_agent_id or agent.id,  # the holder sees it live
                data={"text": body, "author": agent.login},
            )
            session.add(row)
            await session.flush()
            note_id = row.id
        self.notifier.notify()
        return note_id

    async def transfer(
        self,
        conversation_id: int,
        agent_id: int,
        to_login: str | None = None,
        to_queue: bool = False,
        reason: str | None = None,
    ) -> Conversation:
        """Pass a conversation to a named (online) agent or back to the queue; supervisors may move any."""
        async with self.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            supervisor = has_role(agent, "supervisor")
            if conversation.state == State.WITH_AGENT:
                if conversation.assigned_agent_id != agent.id and not supervisor:
                    raise Forbidden(
                        "only the agent who holds the conversation or a supervisor can transfer it"
                    )
            elif conversation.state == State.WAITING:
                if to_queue:
                    raise HandoffConflict(f"conversation {conversation.id} is already waiting in the queue")
                if not supervisor:
                    raise Forbidden(
                        "a waiting conversation is taken with accept; only supervisors assign it to others"
                    )
            else:
                raise HandoffConflict(await self._describe(session, conversation, "cannot be transferred"))
            previous = conversation.assigned_agent_id
            who = actor(agent)
            if to_queue:
                await requeue(session, conversation, who, "transferred_to_queue", previous, now=self.clock())
                audit(session, conversation.id, "transferred", who, previous, to="queue", reason=reason)
            else:
                target = await AgentRepository(session).by_login(to_login or "", lock=True)
                if target is None:
                    raise NotFound(f"no agent with login {to_login!r}")
                if target.id == previous:
                    raise HandoffConflict(f"conversation {conversation.id} is already with {target.login}")
                if not target.active or target.status != "online":
                    state = "deactivated" if not target.active else target.status
                    raise HandoffConflict(
                        f"{target.login} is {state}; transfer to an online agent or to the queue"
                    )
                if not await has_room(session, target):
                    raise HandoffConflict(
                        f"{target.login} already holds {target.capacity} conversation(s), their capacity"
                    )
                await end_assignment(session, conversation.id, "transferred", self.clock())
                await give(
                    session, conversation, target, who, "transfer", reason or "transferred", self.clock()
                )
                audit(session, conversation.id, "transferred", who, target.id, to=target.login, reason=reason)
        self._after([conversation_id])
        return conversation

    async def resolve(self, conversation_id: int, agent_id: int, reason: str | None) -> Conversation:
        """Close the conversation; the customer's next message starts with the bot again."""
        async with self.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            supervisor = has_role(agent, "supervisor")
            if conversation.state == State.WITH_AGENT:
                if conversation.assigned_agent_id != agent.id and not supervisor:
                    raise Forbidden(
                        "only the agent who holds the conversation or a supervisor can resolve it"
                    )
            elif conversation.state == State.WAITING:
                if not supervisor:
                    raise Forbidden("accept a waiting conversation before resolving it")
            else:
                raise HandoffConflict(await self._describe(session, conversation, "cannot be resolved"))
            who = actor(agent)
            now = self.clock()
            ended = await end_assignment(session, conversation.id, "resolved", now)
            await ConversationRepository(session).transition(
                conversation, State.RESOLVED, who, reason or "resolved", now
            )
            audit(
                session,
                conversation.id,
                "resolved",
                who,
                ended.agent_id if ended else agent.id,
                reason=reason,
            )
            await tell_customer(session, conversation, "resolved")
            if self.config.csat:
                await MessageRepository(session).add_outbound(
                    conversation, csat.question(conversation.id, conversation.language), sender="system"
                )
        self._after([conversation_id])
        return conversation

    async def _load(
        self, session: AsyncSession, conversation_id: int, agent_id: int
    ) -> tuple[Conversation, Agent]:
        conversation = await ConversationRepository(session).get(conversation_id, lock=True)
        if conversation is None:
            raise NotFound(f"no conversation with id {conversation_id}")
        agent = await AgentRepository(session).get(agent_id)
        if agent is None or not agent.active:
            raise Forbidden("this agent account is deactivated")
        return conversation, agent

    async def _describe(self, session: AsyncSession, conversation: Conversation, what: str) -> str:
        state = conversation.state
        if state == State.WITH_AGENT and conversation.assigned_agent_id:
            holder = await AgentRepository(session).get(conversation.assigned_agent_id)
            state = f"with {holder.login if holder else 'another agent'}"
        return f"conversation {conversation.id} {what}: it is {state}"

    # --- the clock: timeouts, SLA, estimates, business hours -------------------------------------

    async def tick(self, now: datetime | None = None) -> None:
        """One round of the background worker (also callable directly, with a given time, in tests)."""
        explicit = now is not None
        now = now or self.clock()
        await self.expire_reply_timeouts(now)
        await self.flag_sla(now)
        await self.assign(now)
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
        async with self.database.session() as session:
            return await AgentRepository(session).purge(now or self.clock())

    async def expire_reply_timeouts(self, now: datetime | None = None) -> list[int]:
        """Assignments without a first reply within `handoff.agent_reply_timeout` go back to the queue."""
        now = now or self.clock()
        cutoff = now - timedelta(seconds=self.config.agent_reply_timeout)
        async with self.database.session() as session:
            overdue = (
                await session.execute(
                    select(Assignment.conversation_id, Assignment.agent_id).where(
                        Assignment.ended_at.is_(None),
                        Assignment.first_response_at.is_(None),
                        Assignment.assigned_at < cutoff,
                    )
                )
            ).all()
        done = []
        for conversation_id, agent_id in overdue:
            async with self.transaction() as session:
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
                    continue  # answered, moved or handled by another process meanwhile
                await requeue(session, conversation, "system", "agent_reply_timeout", agent_id, now=now)
                agent = await AgentRepository(session).get(agent_id, lock=True)
                if agent is not None and self.config.away_on_timeout and agent.status == "online":
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
                done.append(conversation_id)
                log.warning(
                    "conversation %s: agent %s did not reply within %g s; back to the queue",
                    conversation_id,
                    agent_id,
                    self.config.agent_reply_timeout,
                )
        if done:
            self._after(done)
        return done

    async def flag_sla(self, now: datetime | None = None) -> list[int]:
        """Flag conversations waiting past `handoff.sla_first_response` without an agent's answer."""
        now = now or self.clock()
        cutoff = now - timedelta(seconds=self.config.sla_first_response)
        overdue = (
            Conversation.state.in_([State.WAITING, State.WITH_AGENT]),
            Conversation.first_response_at.is_(None),
            Conversation.sla_breached_at.is_(None),
            Conversation.handoff_at < cutoff,
        )
        async with self.database.session() as session:
            if not (await session.execute(select(Conversation.id).where(*overdue).limit(1))).first():
                return []
        flagged = []
        async with self.transaction() as session:
            rows = (
                (
                    await session.execute(
                        select(Conversation).where(*overdue).with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            for conversation in rows:
                conversation.sla_breached_at = now
                waited = (now - as_utc(conversation.handoff_at)).total_seconds()
                audit(
                    session,
                    conversation.id,
                    "sla_breached",
                    "system",
                    None,
                    waited_seconds=round(waited),
                    threshold_seconds=self.config.sla_first_response,
                    state=conversation.state,
                )
                flagged.append(conversation.id)
        if flagged:
            log.warning("SLA first response breached: conversations %s", flagged)
            self.notifier.notify()
        return flagged

    async def update_waiting(self, now: datetime | None = None) -> list[int]:
        """Tell waiting customers when agents are back, or when their estimated wait has grown."""
        now = now or self.clock()
        open_now = self.hours.is_open(now)
        async with self.database.session() as session:
            waiting = (
                (
                    await session.execute(
                        select(Conversation)
                        .where(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
                        .order_by(*queue_order())
                    )
                )
                .scalars()
                .all()
            )
            if not waiting:
                return []
            staff = await staffing(session)
            handling, _ = await handling_time(
                session, self.config.estimate_sample, self.config.default_handling_time
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
            self._after(told)
        return told

    def _grew(self, told: float | None, told_at: datetime | None, estimate: float, now: datetime) -> bool:
        if told is None or told_at is None:
            return False
        if (now - as_utc(told_at)).total_seconds() < self.config.estimate_update_interval:
            return False
        return estimate >= told * 1.25 and estimate - told >= 60 and minutes(estimate) > minutes(told)

    async def _tell_waiting(
        self, conversation_id: int, now: datetime, estimate: float, position: int, reopened: bool
    ) -> bool:
        async with self.database.session() as session:
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

    async def queue_summary(self, now: datetime | None = None) -> dict[str, Any]:
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

    async def run(self) -> None:
        """The background worker of `supportbot run`: timeouts, SLA, assignment, waiting updates."""
        while True:
            try:
                await self.tick()
            except Exception:  # a database restart: log, wait, keep going
                log.exception("handoff worker round failed; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.tick_seconds)
            self._wake.clear()


def actor(agent: Agent) -> str:
    return f"agent:{agent.login}"
