"""The audit trail as agents read it: a conversation's notes, and the live feed after a cursor."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Event

FEED_BATCH = 500  # events one read of the live feed returns at most; the stream reads on at once


async def notes(session: AsyncSession, conversation_id: int) -> Sequence[Event]:
    """The agents' internal notes on a conversation, oldest first."""
    query = (
        select(Event).where(Event.conversation_id == conversation_id, Event.kind == "note").order_by(Event.id)
    )
    return (await session.execute(query)).scalars().all()


async def events_after(
    session: AsyncSession, position: int, agent_id: int | None, shared: Collection[str]
) -> Sequence[Event]:
    """Events after id `position`, oldest first: every one (agent_id None, for supervisors), or those
    concerning the agent and those of the `shared` kinds."""
    query = select(Event).where(Event.id > position).order_by(Event.id).limit(FEED_BATCH)
    if agent_id is not None:
        query = query.where(or_(Event.agent_id == agent_id, Event.kind.in_(shared)))
    return (await session.execute(query)).scalars().all()


async def latest_event_id(session: AsyncSession) -> int:
    """The newest event's id (0 before the first): where a live feed without a past starts."""
    return int((await session.execute(select(func.max(Event.id)))).scalar_one() or 0)
