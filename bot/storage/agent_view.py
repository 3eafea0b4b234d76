"""What agents see of conversations: which ones, with whom and where in the queue, in full, and unread.

The read side of the agent API and the console (bot/handoff/api/, bot/web/console.py): queries only,
each given the session it runs in; the routes turn the rows into their response bodies.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.queue import queue_order
from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation, Customer, Message, utcnow

MAX_MESSAGES = 1000  # of one conversation, in its detail
UNREAD_KEPT = 99  # unread customer messages listed per conversation, the newest


@dataclass(frozen=True)
class ConversationRow:
    """A conversation with its customer, the agent holding it, and its place in the queue if waiting."""

    conversation: Conversation
    customer: Customer | None
    agent: Agent | None
    queue_position: int | None


Access = Literal["write", "read"]  # write: also notes; read: the conversation, its history and card
PAST_HOLDER_READS = timedelta(hours=24)  # handoff.past_holder_read_hours


async def access(
    session: AsyncSession,
    conversation: Conversation,
    agent_id: int,
    supervisor: bool,
    past_holder_reads: timedelta = PAST_HOLDER_READS,
) -> Access | None:
    """What an agent may do with a conversation: the one rule for the API, the console and the stream.

    Supervisors read and write every conversation; an agent reads and writes (notes) the waiting queue
    and what they hold; one who held it before (transferred away, resolved, timed out) reads it for
    `past_holder_reads` after their assignment ended, and never writes; anyone else gets nothing.
    (Writing to the customer is the holder's alone: bot/handoff/moves.py.)
    """
    holds = conversation.state == State.WITH_AGENT and conversation.assigned_agent_id == agent_id
    if supervisor or holds or conversation.state == State.WAITING:
        return "write"
    return (
        "read"
        if conversation.id in await past_holdings(session, [conversation.id], agent_id, past_holder_reads)
        else None
    )


async def past_holdings(
    session: AsyncSession, conversation_ids: Collection[int], agent_id: int, reads: timedelta
) -> set[int]:
    """Of `conversation_ids`, those the agent held in an assignment that ended less than `reads` ago."""
    if not conversation_ids:
        return set()
    since = utcnow() - reads
    rows = await session.execute(
        select(Assignment.conversation_id).where(
            Assignment.conversation_id.in_(list(conversation_ids)),
            Assignment.agent_id == agent_id,
            or_(Assignment.ended_at.is_(None), Assignment.ended_at > since),
        )
    )
    return set(rows.scalars())


async def readable(
    session: AsyncSession, conversation_ids: Collection[int], agent_id: int, reads: timedelta
) -> set[int]:
    """Of `conversation_ids`, those `access` lets a (non-supervisor) agent read; for the event stream."""
    if not conversation_ids:
        return set()
    open_ones = await session.execute(
        select(Conversation.id).where(
            Conversation.id.in_(list(conversation_ids)),
            or_(
                Conversation.state == State.WAITING,
                (Conversation.state == State.WITH_AGENT) & (Conversation.assigned_agent_id == agent_id),
            ),
        )
    )
    return set(open_ones.scalars()) | await past_holdings(session, conversation_ids, agent_id, reads)


async def list_conversations(
    session: AsyncSession,
    agent_id: int,
    supervisor: bool,
    state: str | None,
    mine: bool,
    limit: int,
    offset: int,
) -> list[Conversation]:
    """Conversations in `state` (default: open ones): the agent's own, or all they may see."""
    query = select(Conversation).where(
        Conversation.state.in_([state] if state else [State.WAITING, State.WITH_AGENT])
    )
    if mine:
        query = query.where(Conversation.assigned_agent_id == agent_id)
    elif not supervisor:
        # agents see the whole queue and their own conversations
        query = query.where(
            or_(Conversation.state == State.WAITING, Conversation.assigned_agent_id == agent_id)
        )
    if state == State.WAITING:
        query = query.order_by(*queue_order())
    else:
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    return list((await session.execute(query.limit(limit).offset(offset))).scalars().all())


async def with_people(session: AsyncSession, conversations: Sequence[Conversation]) -> list[ConversationRow]:
    """Each conversation with its customer, its agent and (waiting) its queue position; three queries."""
    customer_ids = {c.customer_id for c in conversations}
    customers = {
        c.id: c
        for c in (await session.execute(select(Customer).where(Customer.id.in_(customer_ids)))).scalars()
    }
    agents = await _agents(session, (c.assigned_agent_id for c in conversations if c.assigned_agent_id))
    waiting = any(c.state == State.WAITING for c in conversations)
    places = await queue_positions(session) if waiting else {}
    return [
        ConversationRow(
            c,
            customers.get(c.customer_id),
            agents.get(c.assigned_agent_id) if c.assigned_agent_id else None,
            places.get(c.id),
        )
        for c in conversations
    ]


async def queue_positions(session: AsyncSession) -> dict[int, int]:
    """Every waiting conversation's place in the queue, from 1."""
    ids = (
        await session.execute(
            select(Conversation.id)
            .where(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
            .order_by(*queue_order())
        )
    ).scalars()
    return {conversation_id: place for place, conversation_id in enumerate(ids, start=1)}


async def messages(session: AsyncSession, conversation_id: int) -> Sequence[Message]:
    """The conversation's messages, both ways, oldest first (at most MAX_MESSAGES)."""
    query = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    return (await session.execute(query.limit(MAX_MESSAGES))).scalars().all()


async def logins(session: AsyncSession, agent_ids: Iterable[int]) -> dict[int, str]:
    """The logins of these agents, by id (who wrote which message)."""
    return {agent.id: agent.login for agent in (await _agents(session, agent_ids)).values()}


async def assignment_history(session: AsyncSession, conversation_id: int) -> list[tuple[Assignment, Agent]]:
    """Who had the conversation, in order: each assignment with its agent."""
    rows = await session.execute(
        select(Assignment, Agent)
        .join(Agent, Agent.id == Assignment.agent_id)
        .where(Assignment.conversation_id == conversation_id)
        .order_by(Assignment.assigned_at, Assignment.id)
    )
    return [(assignment, agent) for assignment, agent in rows.all()]


async def latest_inbound(session: AsyncSession, conversation_id: int, limit: int = 50) -> Sequence[Message]:
    """The customer's latest messages in the conversation, newest first."""
    query = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def unread(session: AsyncSession, agent_id: int) -> dict[int, list[int]]:
    """For each conversation the agent holds: the customer's messages since the agent's last reply."""
    mine = list(
        (
            await session.execute(
                select(Conversation.id).where(
                    Conversation.assigned_agent_id == agent_id, Conversation.state == State.WITH_AGENT
                )
            )
        ).scalars()
    )
    if not mine:
        return {}
    replied: dict[int, int] = {
        conversation_id: last
        for conversation_id, last in await session.execute(
            select(Message.conversation_id, func.max(Message.id))
            .where(Message.conversation_id.in_(mine), Message.sender == "agent")
            .group_by(Message.conversation_id)
        )
    }
    rows = await session.execute(
        select(Message.conversation_id, Message.id)
        .where(Message.conversation_id.in_(mine), Message.direction == "in", Message.text != "")
        .order_by(Message.id)
    )
    found: dict[int, list[int]] = {conversation_id: [] for conversation_id in mine}
    for conversation_id, message_id in rows:
        if message_id > (replied.get(conversation_id) or 0):
            found[conversation_id].append(message_id)
    return {conversation_id: ids[-UNREAD_KEPT:] for conversation_id, ids in found.items()}


async def _agents(session: AsyncSession, ids: Iterable[int]) -> dict[int, Agent]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Agent).where(Agent.id.in_(wanted)))
    return {agent.id: agent for agent in rows.scalars()}
