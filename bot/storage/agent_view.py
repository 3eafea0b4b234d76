"""What agents see of conversations: which ones, with whom and where in the queue, in full, and unread.

The read side of the agent API and the console (bot/handoff/api/, bot/web/console.py): queries only,
each given the session it runs in; the routes turn the rows into their response bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.queue import queue_order
from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation, Customer, Message

MAX_MESSAGES = 1000  # of one conversation, in its detail
UNREAD_KEPT = 99  # unread customer messages listed per conversation, the newest


@dataclass(frozen=True)
class ConversationRow:
    """A conversation with its customer, the agent holding it, and its place in the queue if waiting."""

    conversation: Conversation
    customer: Customer | None
    agent: Agent | None
    queue_position: int | None


async def may_see(session: AsyncSession, conversation: Conversation, agent_id: int, supervisor: bool) -> bool:
    """Supervisors see all; agents the queue, what they hold and what they once held."""
    if supervisor or conversation.state == State.WAITING or conversation.assigned_agent_id == agent_id:
        return True
    held = await session.execute(
        select(Assignment.id)
        .where(Assignment.conversation_id == conversation.id, Assignment.agent_id == agent_id)
        .limit(1)
    )
    return held.first() is not None


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
