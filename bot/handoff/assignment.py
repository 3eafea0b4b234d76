"""Assignment: who gets which waiting conversation, and every move of a conversation between people.

Invariants, kept by the database and not by luck:
- a conversation has at most one open assignment (a partial unique index on assignments);
- an agent never holds more open assignments than their capacity: every path that gives an agent a
  conversation locks that agent's row first (`SELECT ... FOR UPDATE`, `SKIP LOCKED` for the automatic
  assigner) and counts their open assignments under the lock. On SQLite, which has no row locks, every such
  transaction starts by writing the `handoff_locks` row, so they run one at a time.

Several `supportbot run` processes may run the assigner against one PostgreSQL database at once: each
claims the agents and conversations nobody else holds, and skips the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import SupportBotError
from bot.handoff.agents import AgentRepository, speaks
from bot.handoff.queue import queue_order, queue_position
from bot.handoff.texts import text
from bot.messages import OutgoingReply
from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation, Event, HandoffLock, as_utc, utcnow
from bot.storage.repositories import ConversationRepository, MessageRepository

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LET_GO = ("agent_reply_timeout", "transferred_to_queue")  # such agents are the last choice for it again


class HandoffConflict(SupportBotError):
    """The move is not possible in the conversation's current state (the message says why)."""


@dataclass(frozen=True)
class Assigned:
    conversation_id: int
    agent_id: int
    agent_login: str


async def serialize(session: AsyncSession, is_sqlite: bool) -> None:
    """On SQLite, take the database's write lock now, before anything is read (no-op on PostgreSQL)."""
    if is_sqlite:
        await session.execute(
            update(HandoffLock).where(HandoffLock.name == "assignment").values(taken_at=utcnow())
        )


def audit(
    session: AsyncSession,
    conversation_id: int | None,
    kind: str,
    actor: str,
    agent_id: int | None = None,
    **data: Any,
) -> None:
    """Record one move in the audit table: who (actor), what (kind), when, why (data["reason"])."""
    session.add(Event(conversation_id=conversation_id, kind=kind, actor=actor, agent_id=agent_id, data=data))


async def open_assignment(session: AsyncSession, conversation_id: int) -> Assignment | None:
    query = select(Assignment).where(
        Assignment.conversation_id == conversation_id, Assignment.ended_at.is_(None)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def end_assignment(
    session: AsyncSession, conversation_id: int, reason: str, now: datetime | None = None
) -> Assignment | None:
    row = await open_assignment(session, conversation_id)
    if row is not None:
        row.ended_at = now or utcnow()
        row.end_reason = reason
    return row


async def tell_customer(session: AsyncSession, conversation: Conversation, key: str, **values: Any) -> None:
    """Queue a system message to the customer in their language (delivered by the outbox)."""
    await MessageRepository(session).add_outbound(
        conversation, OutgoingReply(text(key, conversation.language, **values)), sender="system"
    )


async def give(
    session: AsyncSession,
    conversation: Conversation,
    agent: Agent,
    actor: str,
    how: str,
    reason: str,
    now: datetime | None = None,
) -> Assigned:
    """Hand `conversation` to `agent`. The caller holds both rows locked and has checked capacity."""
    now = now or utcnow()
    session.add(
        Assignment(
            conversation_id=conversation.id, agent_id=agent.id, assigned_at=now, assigned_by=actor, how=how
        )
    )
    conversation.assigned_agent_id = agent.id
    await ConversationRepository(session).transition(
        conversation, State.WITH_AGENT, actor, reason, agent=agent.login
    )
    agent.last_assigned_at = now
    audit(session, conversation.id, "assigned", actor, agent.id, agent=agent.login, how=how, reason=reason)
    await tell_customer(session, conversation, "agent_joined", name=agent.name)
    return Assigned(conversation.id, agent.id, agent.login)


async def requeue(
    session: AsyncSession,
    conversation: Conversation,
    actor: str,
    reason: str,
    agent_id: int | None = None,
    tell: bool = True,
    now: datetime | None = None,
) -> None:
    """Put a conversation an agent had back in the queue, in the place it first had (no penalty)."""
    await end_assignment(session, conversation.id, reason, now)
    conversation.assigned_agent_id = None
    conversation.waiting_since = conversation.handoff_at or now or utcnow()
    await ConversationRepository(session).transition(conversation, State.WAITING, actor, reason)
    audit(session, conversation.id, "returned_to_queue", actor, agent_id, reason=reason)
    await session.flush()
    if tell:
        await tell_customer(
            session, conversation, "requeued", position=await queue_position(session, conversation)
        )


async def has_room(session: AsyncSession, agent: Agent) -> bool:
    """True when the (locked) agent holds fewer conversations than their capacity."""
    load = (await AgentRepository(session).loads([agent.id])).get(agent.id, 0)
    return load < agent.capacity


async def _preferences(
    session: AsyncSession, conversations: list[Conversation]
) -> tuple[dict[int, int], dict[int, set[int]]]:
    """Per conversation: the agent who last served this customer, and agents who let it go (timeout,
    or handed it back to the queue), who should not get it straight back."""
    customer_ids = {c.customer_id for c in conversations}
    conversation_ids = [c.id for c in conversations]
    previous: dict[int, int] = {}
    rows = await session.execute(
        select(Conversation.customer_id, Assignment.agent_id)
        .join(Assignment, Assignment.conversation_id == Conversation.id)
        .where(Conversation.customer_id.in_(customer_ids), Conversation.id.not_in(conversation_ids))
        .order_by(Assignment.assigned_at, Assignment.id)
    )
    for customer_id, agent_id in rows:
        previous[customer_id] = agent_id  # the latest wins
    let_go: dict[int, set[int]] = {}
    rows = await session.execute(
        select(Assignment.conversation_id, Assignment.agent_id).where(
            Assignment.conversation_id.in_(conversation_ids), Assignment.end_reason.in_(LET_GO)
        )
    )
    for conversation_id, agent_id in rows:
        let_go.setdefault(conversation_id, set()).add(agent_id)
    return {c.id: previous[c.customer_id] for c in conversations if c.customer_id in previous}, let_go


def pick_agent(
    candidates: list[Agent],
    free: dict[int, int],
    language: str | None,
    previous_agent: int | None,
    let_go: set[int],
) -> Agent | None:
    """The fair choice among agents with a free slot.

    In order: not someone who let this conversation go (timeout, back to the queue); the agent who served this customer before;
    an agent who speaks the customer's language; the most free capacity; then whoever has waited longest
    since their last assignment.
    """
    available = [agent for agent in candidates if free.get(agent.id, 0) > 0]
    if not available:
        return None
    return min(
        available,
        key=lambda agent: (
            agent.id in let_go,
            agent.id != previous_agent,
            not speaks(agent, language),
            -free[agent.id],
            as_utc(agent.last_assigned_at) or _EPOCH,
            agent.id,
        ),
    )


async def assign_waiting(
    session: AsyncSession,
    is_sqlite: bool,
    now: datetime | None = None,
    limit: int = 200,
    clock: Callable[[], datetime] = utcnow,
) -> list[Assigned]:
    """Give waiting conversations (highest priority, then oldest first) to online agents with room."""
    await serialize(session, is_sqlite)
    agents = list(
        (
            await session.execute(
                select(Agent)
                .where(
                    Agent.status == "online",
                    Agent.active.is_(True),
                    Agent.capacity > 0,
                    Agent.role != "editor",
                )
                .order_by(Agent.id)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not agents:
        return []
    loads = await AgentRepository(session).loads([a.id for a in agents])
    free = {a.id: a.capacity - loads.get(a.id, 0) for a in agents}
    slots = sum(max(0, n) for n in free.values())
    if slots <= 0:
        return []
    waiting = list(
        (
            await session.execute(
                select(Conversation)
                .where(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
                .order_by(*queue_order())
                .limit(min(slots, limit))
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not waiting:
        return []
    previous, let_go = await _preferences(session, waiting)
    now = now or clock()  # after the loads were counted: assignment times never predate the count
    done: list[Assigned] = []
    for conversation in waiting:
        agent = pick_agent(
            agents,
            free,
            conversation.language,
            previous.get(conversation.id),
            let_go.get(conversation.id, set()),
        )
        if agent is None:
            break
        done.append(await give(session, conversation, agent, "system", "auto", "auto_assigned", now))
        free[agent.id] -= 1
    await session.flush()
    return done
