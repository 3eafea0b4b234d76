"""The desk's rows: topics (one per customer), posts (its stored outbox) and its shared marks.

Safe with several `supportbot run` processes on one database: a post's key is unique, so an event turned
into posts twice is posted once; a topic row is unique per customer and claimed before createForumTopic,
so one customer never gets two topics; one process at a time holds the sender's lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import DeskPost, DeskState, DeskTopic, Event, as_utc, utcnow

CURSOR = "cursor"  # desk_state.number: the last event turned into posts
LEASE = "sender"  # desk_state.holder/until: the process that follows events and sends posts
HEALTH = "group"  # desk_state.status: None, or what is wrong with the group (bot removed...)
CLAIM = timedelta(seconds=60)  # a topic being created is the claimer's for this long


async def add_post(
    session: AsyncSession,
    key: str,
    kind: str,
    body: dict[str, Any],
    topic_id: int | None = None,
    conversation_id: int | None = None,
    status: str = "pending",
) -> bool:
    """Store a post unless one with this key exists; return whether it was added."""
    if (await session.execute(select(DeskPost.id).where(DeskPost.key == key))).first():
        return False
    try:
        async with session.begin_nested():
            session.add(
                DeskPost(
                    key=key[:96],
                    kind=kind,
                    body=body,
                    topic_id=topic_id,
                    conversation_id=conversation_id,
                    status=status,
                    attempts=0,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:  # stored meanwhile by another process
        return False
    return True


async def seen(session: AsyncSession, key: str) -> bool:
    return (await session.execute(select(DeskPost.id).where(DeskPost.key == key))).first() is not None


async def topic_of_customer(session: AsyncSession, customer_id: int, chat_id: int, name: str) -> DeskTopic:
    """The customer's topic row (created, not yet as a Telegram topic, when they have none)."""
    query = select(DeskTopic).where(DeskTopic.customer_id == customer_id)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            row = DeskTopic(
                customer_id=customer_id, chat_id=chat_id, name=name, status="new", created_at=utcnow()
            )
            session.add(row)
    except IntegrityError:
        return (await session.execute(query)).scalar_one()
    return row


async def claim_topic(session: AsyncSession, topic_id: int, now: datetime) -> bool:
    """Claim a topic that has no Telegram topic yet, for creating it; False if it exists or is claimed."""
    result = await session.execute(
        update(DeskTopic)
        .where(
            DeskTopic.id == topic_id,
            DeskTopic.thread_id.is_(None),
            or_(DeskTopic.claimed_until.is_(None), DeskTopic.claimed_until < now),
        )
        .values(claimed_until=now + CLAIM)
    )
    return int(cast(CursorResult[Any], result).rowcount) == 1


async def state_row(session: AsyncSession, name: str, lock: bool = False) -> DeskState:
    """The named mark, created on first use (the cursor starts at the newest event: no replay of history)."""
    query = select(DeskState).where(DeskState.name == name)
    if lock:
        # write first: the row lock on PostgreSQL, and on SQLite the write lock before anything is read
        # (a read transaction that writes later can fail with SQLITE_BUSY once another one committed)
        await session.execute(update(DeskState).where(DeskState.name == name).values(name=name))
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    start = 0
    if name == CURSOR:
        start = int((await session.execute(select(func.max(Event.id)))).scalar() or 0)
    try:
        async with session.begin_nested():
            session.add(DeskState(name=name, number=start))
    except IntegrityError:
        pass
    return (await session.execute(query)).scalar_one()


async def take_lease(session: AsyncSession, holder: str, seconds: float, now: datetime) -> bool:
    """Hold (or renew) the sender's lease; False while another process holds it."""
    row = await state_row(session, LEASE, lock=True)
    if row.holder not in (None, holder) and row.until is not None and as_utc(row.until) > now:
        return False
    row.holder, row.until = holder, now + timedelta(seconds=seconds)
    return True


async def release_lease(session: AsyncSession, holder: str) -> None:
    await session.execute(
        update(DeskState).where(DeskState.name == LEASE, DeskState.holder == holder).values(until=None)
    )


async def due_posts(session: AsyncSession, limit: int = 100) -> list[DeskPost]:
    """Pending posts in the order they were stored (a post not yet due holds back its topic's later ones)."""
    query = select(DeskPost).where(DeskPost.status == "pending").order_by(DeskPost.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def purge(session: AsyncSession, before: datetime) -> int:
    """Forget posts sent (and handled-update marks) before `before`; failed ones stay for inspection."""
    result = await session.execute(
        delete(DeskPost).where(DeskPost.status.in_(["sent", "skipped"]), DeskPost.created_at < before)
    )
    return int(cast(CursorResult[Any], result).rowcount)


async def counts(session: AsyncSession) -> dict[str, int]:
    pending = select(func.count()).select_from(DeskPost).where(DeskPost.status == "pending")
    failed = select(func.count()).select_from(DeskPost).where(DeskPost.status == "failed")
    gone = select(func.count()).select_from(DeskTopic).where(DeskTopic.status == "gone")
    return {
        "pending_posts": int((await session.execute(pending)).scalar() or 0),
        "failed_posts": int((await session.execute(failed)).scalar() or 0),
        "topics_gone": int((await session.execute(gone)).scalar() or 0),
    }
