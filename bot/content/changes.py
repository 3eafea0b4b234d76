"""The knowledge workspace's audit trail: every save, creation, deletion and revert of a KB entry, with who,
when, which file and the entry's text before and after, listed per entry (newest first) for its history.

They are events (bot/storage/models.py's audit table) without a conversation, like the insights'
additions: kb_entry_created, kb_entry_saved, kb_entry_deleted, kb_entry_reverted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from bot.storage.database import Database
from bot.storage.models import Event

CREATED, SAVED, DELETED, REVERTED = (
    "kb_entry_created",
    "kb_entry_saved",
    "kb_entry_deleted",
    "kb_entry_reverted",
)
KINDS = (CREATED, SAVED, DELETED, REVERTED)
INTENT_SAVED = "kb_intent_saved"  # an intent's examples (data["entry"] is the intent's name)


async def record(
    database: Database,
    kind: str,
    actor: str,
    agent_id: int | None,
    entry: str,
    file: str,
    line: int,
    before: str | None,
    after: str | None,
    **data: Any,
) -> int:
    """Write one change to the audit trail; return its event id."""
    data.update(entry=entry, file=file, line=line, before=before, after=after)
    event = Event(conversation_id=None, kind=kind, actor=actor, agent_id=agent_id, data=data)
    async with database.session() as session:
        session.add(event)
        await session.flush()
        return int(event.id)


async def history(database: Database, entry: str, limit: int = 200) -> Sequence[Event]:
    """The entry's changes, newest first."""
    async with database.session() as session:
        rows = await session.execute(
            select(Event)
            .where(Event.kind.in_(KINDS), Event.data["entry"].as_string() == entry)
            .order_by(Event.id.desc())
            .limit(limit)
        )
        return rows.scalars().all()


async def change(database: Database, event_id: int) -> Event | None:
    """One change by its event id (None if there is none, or it is not a KB entry's change)."""
    async with database.session() as session:
        event = await session.get(Event, event_id)
    return event if event is not None and event.kind in KINDS else None
