"""The waiting queue: highest priority, then oldest first; positions and waits are computed, not guessed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation


def queue_order() -> tuple[Any, ...]:
    """The order agents are given waiting conversations: priority bumps first, then the longest wait."""
    return (Conversation.priority.desc(), Conversation.waiting_since, Conversation.id)


def _waiting() -> Any:
    return and_(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))


async def queue_position(session: AsyncSession, conversation: Conversation) -> int:
    """Return 1 + the number of waiting conversations that will be served before this one."""
    since = conversation.waiting_since
    priority = conversation.priority or 0
    same_priority_earlier = and_(
        Conversation.priority == priority,
        or_(
            Conversation.waiting_since < since,
            and_(Conversation.waiting_since == since, Conversation.id < conversation.id),
        ),
    )
    query = (
        select(func.count())
        .select_from(Conversation)
        .where(
            _waiting(),
            Conversation.id != conversation.id,
            or_(Conversation.priority > priority, same_priority_earlier),
        )
    )
    return int((await session.execute(query)).scalar_one()) + 1


async def waiting_count(session: AsyncSession) -> int:
    query = select(func.count()).select_from(Conversation).where(_waiting())
    return int((await session.execute(query)).scalar_one())


@dataclass(frozen=True)
class Staffing:
    """Who can take conversations right now."""

    online_agents: int
    capacity: int  # conversations the online agents can hold at once
    free: int  # of which free now


async def staffing(session: AsyncSession) -> Staffing:
    agents = (
        await session.execute(
            select(Agent.id, Agent.capacity).where(
                Agent.status == "online", Agent.active.is_(True), Agent.capacity > 0, Agent.role != "editor"
            )
        )
    ).all()
    if not agents:
        return Staffing(0, 0, 0)
    ids = [agent_id for agent_id, _ in agents]
    loads = dict(
        (
            await session.execute(
                select(Assignment.agent_id, func.count())
                .where(Assignment.ended_at.is_(None), Assignment.agent_id.in_(ids))
                .group_by(Assignment.agent_id)
            )
        ).all()
    )
    capacity = sum(int(cap) for _, cap in agents)
    free = sum(max(0, int(cap) - int(loads.get(agent_id, 0))) for agent_id, cap in agents)
    return Staffing(len(agents), capacity, free)


async def handling_time(session: AsyncSession, sample: int, default: float) -> tuple[float, int]:
    """Return the median time agents recently spent on a conversation, and how many it is based on."""
    rows = (
        await session.execute(
            select(Assignment.assigned_at, Assignment.ended_at)
            .where(Assignment.end_reason == "resolved", Assignment.ended_at.is_not(None))
            .order_by(Assignment.ended_at.desc())
            .limit(max(1, sample))
        )
    ).all()
    durations = [(ended - started).total_seconds() for started, ended in rows if ended and started]
    durations = [d for d in durations if d >= 0]
    if not durations:
        return default, 0
    return max(1.0, statistics.median(durations)), len(durations)


def estimate_wait(position: int, handling: float, staff: Staffing) -> float:
    """Seconds until `position` is served: at once if a slot is free, else slots free up at capacity/handling.

    With nobody online the estimate assumes one agent, so the customer still gets an honest order of
    magnitude (business hours are told separately).
    """
    ahead_of_free = position - staff.free
    if ahead_of_free <= 0:
        return 0.0
    return ahead_of_free * handling / max(staff.capacity, 1)
