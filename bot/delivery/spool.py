"""The inbound spool: webhook bodies stored before they are acknowledged, replayed until processed.

A platform that redelivers only on a non-2xx answer (WhatsApp) must get its 200 fast, so its webhook is
processed after the answer. Storing the body first makes that 200 a promise: if the process dies before
the messages are stored (a deploy, an OOM kill, a database outage longer than the channel's retries), a
later round here hands the body back to the channel that spooled it (`Channel.replay`).

Several processes may share the database. A body belongs to the process working on it until
`claimed_until`: `spool.grace_seconds` after it arrived or was claimed, pushed on by that process's
heartbeat (every third of it) for as long as the process works on it. A process that dies stops renewing,
so its bodies are due within `grace_seconds` and a surviving or restarted process replays them at its next
round (`replay_interval_seconds`), seconds rather than minutes after the crash. Only then may any
process claim it, in one UPDATE that pushes `claimed_until` on and counts the attempt. On PostgreSQL the
rows are picked FOR UPDATE SKIP LOCKED, so processes claiming at once take different rows; SQLite runs one
write at a time, so the UPDATE alone is atomic there. A claim that runs out while its process is still busy
costs only work: the engine stores each message under a unique platform id, so a second run answers nothing
twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Channel, Inbox
from bot.config import SpoolSettings
from bot.errors import SpoolError, StorageError
from bot.insights import metrics
from bot.storage.database import Database
from bot.storage.models import SpooledWebhook, as_utc, utcnow

log = logging.getLogger(__name__)
_CLAIM_BATCH = 20  # bodies claimed per statement; a round claims until none is due
_ERROR_LIMIT = 4000  # characters of last_error kept
# what an operator sees of a row; the body's size is counted by the database, the body is not read
_ENTRY_COLUMNS = (
    SpooledWebhook.id,
    SpooledWebhook.channel,
    SpooledWebhook.received_at,
    SpooledWebhook.attempts,
    SpooledWebhook.claimed_until,
    SpooledWebhook.processed_at,
    SpooledWebhook.last_error,
    func.length(SpooledWebhook.body),
)


@dataclass(frozen=True)
class _Claimed:
    spool_id: int
    channel: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class SpoolCounts:
    """What the operator watches: bodies not processed yet, and those given up (kept with last_error)."""

    waiting: int
    failed: int


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled body as an operator sees it (`supportbot spool`); its content only when asked for."""

    id: int
    channel: str
    received_at: datetime
    attempts: int
    claimed_until: datetime
    processed_at: datetime | None
    last_error: str | None
    size: int  # bytes of the body
    state: str  # "waiting", "failed" (given up after max_attempts, not replayed) or "processed"
    body: bytes | None = None


class InboundSpool:
    """Keeps acknowledged webhook bodies (the Inbox's WebhookSpool) and replays unprocessed ones."""

    def __init__(self, database: Database, channels: Mapping[str, Channel], settings: SpoolSettings) -> None:
        self.database = database
        self.channels = channels
        self.settings = settings
        self._working: set[int] = set()  # bodies this process holds: its heartbeat renews their claims

    async def keep(self, channel: str, body: bytes) -> int:
        """Store `body` as received, claimed by this process for the grace period; return its id."""
        now = utcnow()
        row = SpooledWebhook(
            channel=channel, body=body, received_at=now, attempts=1, claimed_until=now + self._grace
        )
        try:
            async with self.database.session() as session:
                session.add(row)
                await session.flush()
                spool_id = row.id
        except Exception as exc:  # whatever the cause, the body is not stored: the platform must not get 200
            raise StorageError(f"could not spool a {channel} webhook: {type(exc).__name__}: {exc}") from exc
        self._working.add(spool_id)
        return spool_id

    async def processed(self, spool_id: int, error: str | None = None) -> None:
        """Mark the body done, or record why not; it is replayed after its claim until max_attempts."""
        self._working.discard(spool_id)  # done with it, or it is replayed after its claim: not renewed
        values: dict[str, object] = (
            {"processed_at": utcnow(), "last_error": None}
            if error is None
            else {"last_error": error[:_ERROR_LIMIT]}
        )
        async with self.database.session() as session:
            row = (
                await session.execute(
                    update(SpooledWebhook)
                    .where(SpooledWebhook.id == spool_id)
                    .values(**values)
                    .returning(SpooledWebhook.channel, SpooledWebhook.attempts)
                    .execution_options(synchronize_session=False)
                )
            ).first()
        if error is not None and row is not None:
            metrics.spool_failed(row.channel, row.attempts >= self.settings.max_attempts)
        if error is not None and row is not None and row.attempts >= self.settings.max_attempts:
            log.error(
                "spooled %s webhook %d given up after %d attempts; it stays in inbound_spool "
                "(`supportbot spool retry %d` replays it): %r",
                row.channel,
                spool_id,
                row.attempts,
                spool_id,
                error,
            )

    async def replay(self, inbox: Inbox) -> int:
        """Hand every body past its claim back to its channel; return how many were processed."""
        done = 0
        while claimed := await self._claim():
            for item in claimed:
                done += await self._replay_one(inbox, item)
        return done

    async def counts(self) -> SpoolCounts:
        """Count bodies waiting to be processed and bodies given up."""
        given_up = self._given_up()
        async with self.database.session() as session:
            row = (
                await session.execute(
                    select(func.count(), func.count().filter(given_up)).where(
                        SpooledWebhook.processed_at.is_(None)
                    )
                )
            ).one()
        return SpoolCounts(waiting=row[0] - row[1], failed=row[1])

    async def entries(self, include_processed: bool = False) -> list[SpoolEntry]:
        """List the bodies not processed (or every body kept), oldest first, without their content."""
        query = select(*_ENTRY_COLUMNS).order_by(SpooledWebhook.id)
        if not include_processed:
            query = query.where(SpooledWebhook.processed_at.is_(None))
        async with self.database.session() as session:
            return [self._entry(row) for row in await session.execute(query)]

    async def entry(self, spool_id: int) -> SpoolEntry:
        """Return one body with its content; raise SpoolError when there is no such row."""
        async with self.database.session() as session:
            row = (
                await session.execute(
                    select(*_ENTRY_COLUMNS, SpooledWebhook.body).where(SpooledWebhook.id == spool_id)
                )
            ).first()
        if row is None:
            raise SpoolError(f"no spooled webhook {spool_id} (see `supportbot spool list --all`)")
        return self._entry(row, body=bytes(row[-1]))

    async def retry(self, spool_ids: Collection[int]) -> list[SpoolEntry]:
        """Make these bodies due for the next replay round, with their attempts counted from 0 again.

        All or none: an unknown id, or a body already processed, raises SpoolError and changes nothing.
        The replay itself is left to the running service, the process that has the channels.
        """
        wanted = sorted(set(spool_ids))
        async with self.database.session() as session:
            reset = await self._reset(session, SpooledWebhook.id.in_(wanted))
            if missing := sorted(set(wanted) - {entry.id for entry in reset}):
                kept = await session.execute(
                    select(SpooledWebhook.id, SpooledWebhook.processed_at).where(
                        SpooledWebhook.id.in_(missing)
                    )
                )
                processed = {row[0]: row[1] for row in kept}
                problems = [
                    f"no spooled webhook {spool_id}"
                    if spool_id not in processed
                    else f"spooled webhook {spool_id} was processed at {as_utc(processed[spool_id]).isoformat()}"
                    " and is not replayed again"
                    for spool_id in missing
                ]
                raise SpoolError(
                    "; ".join(problems) + " (nothing was changed; see `supportbot spool list --all`)"
                )
        return reset

    async def retry_failed(self) -> list[SpoolEntry]:
        """Make every given-up body due for the next replay round, with its attempts counted from 0 again."""
        async with self.database.session() as session:
            return await self._reset(session, self._given_up())

    async def run(self, inbox: Inbox) -> None:
        """Replay, then purge old processed bodies, every replay_interval_seconds (a background task);
        meanwhile renew the claims of the bodies this process works on (its heartbeat)."""
        heartbeat = asyncio.create_task(self.heartbeat(), name="inbound-spool-heartbeat")
        try:
            while True:
                try:
                    await self.replay(inbox)
                    await self._purge()
                except Exception:  # a database restart: log, wait, keep going
                    log.exception("inbound spool round failed; retrying")
                await asyncio.sleep(self.settings.replay_interval_seconds)
        finally:
            heartbeat.cancel()

    async def heartbeat(self) -> None:
        """Every third of grace_seconds, push on the claims of the bodies this process works on."""
        while True:
            await asyncio.sleep(self.settings.grace_seconds / 3)
            try:
                await self.renew()
            except Exception:  # the database is away: the claims may run out, costing only work
                log.exception("inbound spool heartbeat failed; retrying")

    async def renew(self) -> None:
        """Push on the claims of the bodies this process is working on."""
        working = sorted(self._working)
        if not working:
            return
        async with self.database.session() as session:
            await session.execute(
                update(SpooledWebhook)
                .where(SpooledWebhook.id.in_(working), SpooledWebhook.processed_at.is_(None))
                .values(claimed_until=utcnow() + self._grace)
                .execution_options(synchronize_session=False)
            )

    def _given_up(self) -> ColumnElement[bool]:
        """The rows processing has failed on max_attempts times: kept, no longer replayed."""
        return SpooledWebhook.attempts >= self.settings.max_attempts

    @property
    def _grace(self) -> timedelta:
        return timedelta(seconds=self.settings.grace_seconds)

    def _entry(self, row: Row[Any], body: bytes | None = None) -> SpoolEntry:
        spool_id, channel, received_at, attempts, claimed_until, processed_at, last_error, size = tuple(row)[
            :8
        ]
        if processed_at is not None:
            state = "processed"
        else:
            state = "failed" if attempts >= self.settings.max_attempts else "waiting"
        return SpoolEntry(
            spool_id,
            channel,
            received_at,
            attempts,
            claimed_until,
            processed_at,
            last_error,
            size,
            state,
            body,
        )

    async def _reset(self, session: AsyncSession, which: ColumnElement[bool]) -> list[SpoolEntry]:
        """Set attempts to 0 and the claim to now on the unprocessed rows `which` selects; return them."""
        rows = await session.execute(
            update(SpooledWebhook)
            .where(which, SpooledWebhook.processed_at.is_(None))
            .values(attempts=0, claimed_until=utcnow())
            .returning(*_ENTRY_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        return sorted((self._entry(row) for row in rows), key=lambda entry: entry.id)

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        due = (
            select(SpooledWebhook.id)
            .where(
                SpooledWebhook.processed_at.is_(None),
                SpooledWebhook.claimed_until < now,
                ~self._given_up(),
                SpooledWebhook.channel.in_(list(self.channels)),  # others are another process's
            )
            .order_by(SpooledWebhook.id)
            .limit(_CLAIM_BATCH)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite writes one at a time anyway
        )
        async with self.database.session() as session:
            rows = await session.execute(
                update(SpooledWebhook)
                .where(SpooledWebhook.id.in_(due))
                .values(attempts=SpooledWebhook.attempts + 1, claimed_until=now + self._grace)
                .returning(
                    SpooledWebhook.id, SpooledWebhook.channel, SpooledWebhook.body, SpooledWebhook.attempts
                )
                .execution_options(synchronize_session=False)
            )
            claimed = [_Claimed(row[0], row[1], bytes(row[2]), row[3]) for row in rows]
        self._working.update(item.spool_id for item in claimed)
        return sorted(claimed, key=lambda item: item.spool_id)  # in arrival order, as the customer wrote

    async def _replay_one(self, inbox: Inbox, item: _Claimed) -> int:
        log.warning(
            "replaying %s webhook %d (attempt %d): acknowledged earlier but not processed",
            item.channel,
            item.spool_id,
            item.attempts,
        )
        try:
            error = await self.channels[item.channel].replay(inbox, item.body)
        except Exception as exc:  # a bug in an adapter must not stop the other bodies
            log.exception("replaying %s webhook %d failed", item.channel, item.spool_id)
            error = f"{type(exc).__name__}: {exc}"
        await self.processed(item.spool_id, error)
        return int(error is None)

    async def _purge(self) -> None:
        cutoff = utcnow() - timedelta(days=self.settings.keep_processed_days)
        async with self.database.session() as session:
            await session.execute(delete(SpooledWebhook).where(SpooledWebhook.processed_at < cutoff))
