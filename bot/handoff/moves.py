"""The agents' moves: go online or away, take a conversation, answer, note, transfer, resolve.

Each move is one short transaction over the locked conversation; messages to the customer are stored in
it and delivered by the outbox right after the commit. Who may do what is decided in two places only:
`_require_holder` (writing to the customer) and `_require_mover` (transferring, resolving).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import DeliveryTarget, WindowedChannel, ensure_free_form_allowed
from bot.errors import SendError, SupportBotError
from bot.handoff.agents import AgentRepository, actor, has_role
from bot.handoff.assignment import (
    Assigned,
    HandoffConflict,
    audit,
    end_assignment,
    give,
    has_room,
    open_assignment,
    requeue,
    tell_customer,
)
from bot.handoff.desk import Desk
from bot.insights import csat, nps
from bot.messages import Attachment, OutgoingReply
from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation, Customer, Event, Message
from bot.storage.repositories import ConversationRepository, MessageRepository


class NotFound(SupportBotError):
    """No such conversation or agent."""


class Forbidden(SupportBotError):
    """The agent's role does not allow this move."""


class TemplateFailed(SupportBotError):
    """The platform refused the re-engagement template (the message says why)."""


@dataclass
class StatusChange:
    """An agent's new status, what it gave them and what it took back to the queue."""

    status: str
    assigned: list[Assigned] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


class Moves:
    """The moves agents (and supervisors) make on conversations, each safe against the others."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    # --- status ----------------------------------------------------------------------------------

    async def set_status(self, agent_id: int, status: str, actor: str) -> StatusChange:
        """Online: waiting conversations are assigned at once. Offline: the agent's return to the queue."""
        desk = self.desk
        async with desk.transaction() as session:
            agent = await AgentRepository(session).get(agent_id, lock=True)
            if agent is None:
                raise NotFound(f"no agent with id {agent_id}")
            if agent.status != status:
                audit(session, None, "agent_status", actor, agent.id, status=status, previous=agent.status)
                agent.status = status
                agent.status_changed_at = desk.clock()
        change = StatusChange(status)
        if status == "offline":
            change.requeued = await self._requeue_all_of(agent_id, actor, "agent_offline")
        desk.notifier.notify()
        change.assigned = await desk.assign()
        return change

    async def _requeue_all_of(self, agent_id: int, actor: str, reason: str) -> list[int]:
        desk = self.desk
        async with desk.database.session() as session:
            held = select(Assignment.conversation_id).where(
                Assignment.agent_id == agent_id, Assignment.ended_at.is_(None)
            )
            ids = (await session.execute(held)).scalars().all()
        done = []
        for conversation_id in ids:
            async with desk.transaction() as session:
                conversation = await ConversationRepository(session).get(conversation_id, lock=True)
                if conversation is None or conversation.assigned_agent_id != agent_id:
                    continue
                if conversation.state != State.WITH_AGENT:
                    await end_assignment(session, conversation_id, reason)
                    continue
                await requeue(session, conversation, actor, reason, agent_id, now=desk.clock())
                done.append(conversation_id)
        if done:
            desk.deliver_and_wake(done)
        return done

    # --- taking and answering --------------------------------------------------------------------

    async def accept(self, conversation_id: int, agent_id: int) -> Conversation:
        """Take a waiting conversation (capacity permitting); accepting one already yours is a no-op."""
        async with self.desk.transaction() as session:
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
            await give(session, conversation, locked, actor(locked), "take", "taken", self.desk.clock())
        self.desk.deliver_and_wake([conversation_id])
        return conversation

    async def reply(
        self,
        conversation_id: int,
        agent_id: int,
        body: str,
        attachments: Sequence[Attachment] = (),
        via: str | None = None,
    ) -> Message:
        """Send the agent's message to the customer's channel through the outbox.

        `via` names where the agent wrote it when not in the console or the API (e.g. "telegram_desk"),
        kept in the audit row so that place does not show it twice.
        """
        async with self.desk.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            await self._require_holder(
                session,
                conversation,
                agent,
                "is not yours to answer: accept it (or have it transferred) first",
            )
            channel = self.desk.channels.get(conversation.channel)
            if channel is not None:
                ensure_free_form_allowed(channel, conversation.last_customer_message_at)
            row = await MessageRepository(session).add_outbound(
                conversation,
                OutgoingReply(body, attachments=tuple(attachments)),
                sender="agent",
                agent_id=agent.id,
            )
            now = self.desk.clock()
            if conversation.first_response_at is None:
                conversation.first_response_at = now
            assignment = await open_assignment(session, conversation.id)
            if assignment is not None and assignment.first_response_at is None:
                assignment.first_response_at = now
            where = {"via": via} if via else {}
            audit(
                session, conversation.id, "agent_message", actor(agent), agent.id, message_id=row.id, **where
            )
        self.desk.deliver_and_wake([conversation_id])
        return row

    async def send_template(self, conversation_id: int, agent_id: int) -> Message:
        """Outside a messaging window (WhatsApp's 24 hours): send the channel's re-engagement template.

        The row is stored (status "sending", which the outbox leaves alone) before the platform is called,
        then marked sent or failed; free text can follow once the customer answers.
        """
        row_id, target, send = await self._store_template(conversation_id, agent_id)
        try:
            platform_id = await send(target)
        except SendError as exc:
            error: str | None = str(exc)
            platform_id = None
        else:
            error = None
        async with self.desk.database.session() as session:
            if error is None:
                await MessageRepository(session).mark_sent([(row_id, platform_id)])
            stored = await session.get(Message, row_id)  # loaded after the mark: as it now is
            assert stored is not None
            if error is not None:
                stored.status, stored.last_error = "failed", error[:2000]
        if error is not None:
            raise TemplateFailed(error)
        return stored

    async def _store_template(
        self, conversation_id: int, agent_id: int
    ) -> tuple[int, DeliveryTarget, Callable[[DeliveryTarget], Awaitable[str | None]]]:
        """Store the template's row (status "sending"); return it, where it goes and the channel's sender."""
        async with self.desk.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            await self._require_holder(
                session, conversation, agent, "is not yours: accept it (or have it transferred) first"
            )
            channel = self.desk.channels.get(conversation.channel)
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
        return row.id, target, channel.send_template

    async def note(self, conversation_id: int, agent_id: int, body: str, via: str | None = None) -> int:
        """An internal note on the conversation: seen by agents, never sent to the customer."""
        async with self.desk.database.session() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            row = Event(
                conversation_id=conversation.id,
                kind="note",
                actor=actor(agent),
                agent_id=conversation.assigned_agent_id or agent.id,  # the holder sees it live
                data={"text": body, "author": agent.login, **({"via": via} if via else {})},
            )
            session.add(row)
            await session.flush()
            note_id = row.id
        self.desk.notifier.notify()
        return note_id

    # --- moving and closing ----------------------------------------------------------------------

    async def transfer(
        self,
        conversation_id: int,
        agent_id: int,
        to_login: str | None = None,
        to_queue: bool = False,
        reason: str | None = None,
    ) -> Conversation:
        """Pass a conversation to a named (online) agent or back to the queue; supervisors may move any."""
        desk = self.desk
        async with desk.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            if to_queue and conversation.state == State.WAITING:
                raise HandoffConflict(f"conversation {conversation.id} is already waiting in the queue")
            await self._require_mover(
                session,
                conversation,
                agent,
                ("transfer", "transferred"),
                "a waiting conversation is taken with accept; only supervisors assign it to others",
            )
            previous = conversation.assigned_agent_id
            who = actor(agent)
            if to_queue:
                await requeue(session, conversation, who, "transferred_to_queue", previous, now=desk.clock())
                audit(session, conversation.id, "transferred", who, previous, to="queue", reason=reason)
            else:
                target = await self._transfer_target(session, conversation, to_login, previous)
                await end_assignment(session, conversation.id, "transferred", desk.clock())
                await give(
                    session, conversation, target, who, "transfer", reason or "transferred", desk.clock()
                )
                audit(session, conversation.id, "transferred", who, target.id, to=target.login, reason=reason)
        desk.deliver_and_wake([conversation_id])
        return conversation

    async def _transfer_target(
        self, session: AsyncSession, conversation: Conversation, to_login: str | None, previous: int | None
    ) -> Agent:
        """The agent named for a transfer, locked: online, with room, and not the one holding it now."""
        target = await AgentRepository(session).by_login(to_login or "", lock=True)
        if target is None:
            raise NotFound(f"no agent with login {to_login!r}")
        if target.id == previous:
            raise HandoffConflict(f"conversation {conversation.id} is already with {target.login}")
        if target.role == "editor":
            raise HandoffConflict(f"{target.login} is a content editor and takes no conversations")
        if not target.active or target.status != "online":
            state = "deactivated" if not target.active else target.status
            raise HandoffConflict(f"{target.login} is {state}; transfer to an online agent or to the queue")
        if not await has_room(session, target):
            raise HandoffConflict(
                f"{target.login} already holds {target.capacity} conversation(s), their capacity"
            )
        return target

    async def resolve(self, conversation_id: int, agent_id: int, reason: str | None) -> Conversation:
        """Close the conversation; the customer's next message starts with the bot again."""
        desk = self.desk
        async with desk.transaction() as session:
            conversation, agent = await self._load(session, conversation_id, agent_id)
            await self._require_mover(
                session,
                conversation,
                agent,
                ("resolve", "resolved"),
                "accept a waiting conversation before resolving it",
            )
            who = actor(agent)
            now = desk.clock()
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
            if desk.config.csat:
                await MessageRepository(session).add_outbound(
                    conversation, csat.question(conversation.id, conversation.language), sender="system"
                )
            elif (asked := await nps.ask(session, desk.settings, conversation, now)) is not None:
                await MessageRepository(session).add_outbound(conversation, asked, sender="system")
        desk.deliver_and_wake([conversation_id])
        return conversation

    # --- who may --------------------------------------------------------------------------------

    async def _load(
        self, session: AsyncSession, conversation_id: int, agent_id: int
    ) -> tuple[Conversation, Agent]:
        """The conversation (locked) and the agent making the move, who must still be active."""
        conversation = await ConversationRepository(session).get(conversation_id, lock=True)
        if conversation is None:
            raise NotFound(f"no conversation with id {conversation_id}")
        agent = await AgentRepository(session).get(agent_id)
        if agent is None or not agent.active:
            raise Forbidden("this agent account is deactivated")
        return conversation, agent

    async def _require_holder(
        self, session: AsyncSession, conversation: Conversation, agent: Agent, refusal: str
    ) -> None:
        """Only the agent holding the conversation writes to the customer (a supervisor takes it first)."""
        if conversation.state != State.WITH_AGENT or conversation.assigned_agent_id != agent.id:
            raise HandoffConflict(await self._describe(session, conversation, refusal))

    async def _require_mover(
        self,
        session: AsyncSession,
        conversation: Conversation,
        agent: Agent,
        verb: tuple[str, str],
        waiting_refusal: str,
    ) -> None:
        """The holder or a supervisor moves a conversation with an agent; only a supervisor a waiting one.

        `verb` is the move and its participle ("resolve", "resolved") for the refusals.
        """
        supervisor = has_role(agent, "supervisor")
        if conversation.state == State.WITH_AGENT:
            if conversation.assigned_agent_id != agent.id and not supervisor:
                raise Forbidden(f"only the agent who holds the conversation or a supervisor can {verb[0]} it")
        elif conversation.state == State.WAITING:
            if not supervisor:
                raise Forbidden(waiting_refusal)
        else:
            raise HandoffConflict(await self._describe(session, conversation, f"cannot be {verb[1]}"))

    async def _describe(self, session: AsyncSession, conversation: Conversation, what: str) -> str:
        state = conversation.state
        if state == State.WITH_AGENT and conversation.assigned_agent_id:
            holder = await AgentRepository(session).get(conversation.assigned_agent_id)
            state = f"with {holder.login if holder else 'another agent'}"
        return f"conversation {conversation.id} {what}: it is {state}"
