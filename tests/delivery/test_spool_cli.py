"""`supportbot spool list / show / retry`: the real executable on real SQLite and PostgreSQL databases.

The spool's rows are made by `InboundSpool` itself (kept, replayed through a channel that fails or records);
the CLI runs as a separate process on the same database, as an operator runs it next to the service. On
PostgreSQL each test gets its own database, since the CLI can only be pointed at one by its URL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, update

from bot.adapters.base import Channel, DeliveryTarget, Inbox
from bot.config import SpoolSettings
from bot.delivery.spool import InboundSpool
from bot.messages import IncomingMessage, OutgoingReply
from bot.storage.database import Database
from bot.storage.models import SpooledWebhook, as_utc, utcnow
from tests.support.cli import SUPPORTBOT, write_config
from tests.support.services import POSTGRES_URL

SETTINGS = SpoolSettings(grace_seconds=60, max_attempts=2)
# what a customer wrote: personal data a listing must not show; one byte is not UTF-8
BODY = '{"from": "48600100200", "text": "Zażółć gęślą jaźń"}'.encode() + b"\xff"
ERROR = "GraphError: " + "x" * 500


class ReplayRecorder(Channel):
    """A webhook channel whose replay fails while `broken`, and otherwise records the body it was given."""

    name = "hook"

    def __init__(self) -> None:
        self.broken = True
        self.replayed: list[bytes] = []

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        raise AssertionError("a replayed body is recorded, not answered")

    async def replay(self, inbox: Inbox, body: bytes) -> str | None:
        if self.broken:
            return ERROR
        self.replayed.append(body)
        return None


async def _unused_receive(message: IncomingMessage) -> None:
    raise AssertionError("ReplayRecorder hands nothing to the engine")


async def _unused_event(*args: str | None) -> None:
    raise AssertionError("ReplayRecorder reports no events")


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database the CLI can reach by URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/spool.db")
        await db.migrate()
        yield db
        await db.close()
        return
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


class Rig:
    """The spool on `database`, with the recording channel, and the CLI pointed at the same database."""

    def __init__(self, database: Database, config: Path) -> None:
        self.database = database
        self.config = config
        self.channel = ReplayRecorder()
        self.spool = InboundSpool(database, {"hook": self.channel}, SETTINGS)
        self.inbox = Inbox(_unused_receive, _unused_event, _unused_event, spool=self.spool)

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [SUPPORTBOT, "--config", str(self.config), "spool", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    async def lines(self, *args: str) -> list[dict[str, Any]]:
        done = await self.cli(*args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    async def claims_over(self) -> None:
        """Let every claim run out, as spool.grace_seconds after the last attempt."""
        async with self.database.session() as session:
            await session.execute(
                update(SpooledWebhook).values(claimed_until=utcnow() - timedelta(seconds=1))
            )

    async def failed_waiting_processed(self) -> tuple[int, int, int]:
        """Keep three bodies: one given up after two failed attempts, one waiting, one processed."""
        failed = await self.spool.keep("hook", BODY)
        await self.claims_over()
        assert await self.spool.replay(self.inbox) == 0  # attempt 2 of 2 fails: given up
        waiting = await self.spool.keep("hook", b'{"text": "later"}')
        processed = await self.spool.keep("hook", b'{"text": "done"}')
        await self.spool.processed(processed)
        return failed, waiting, processed

    async def row(self, spool_id: int) -> SpooledWebhook:
        async with self.database.session() as session:
            return (
                await session.execute(select(SpooledWebhook).where(SpooledWebhook.id == spool_id))
            ).scalar_one()


@pytest.fixture
def rig(database: Database, tmp_path: Path, index_cache: Path) -> Rig:
    config = write_config(tmp_path, index_cache)
    config.write_text(
        config.read_text(encoding="utf-8").replace("sqlite+aiosqlite:///var/bot.db", database.url)
        + "spool: {max_attempts: 2}\n",
        encoding="utf-8",
    )
    return Rig(database, config)


async def test_list_tells_waiting_from_failed_and_never_prints_a_body(rig: Rig) -> None:
    failed, waiting, processed = await rig.failed_waiting_processed()
    done = await rig.cli("list")
    assert done.returncode == 0, done.stderr
    assert "48600100200" not in done.stdout and "Zażółć" not in done.stdout
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["id"], e["state"], e["attempts"], e["size"]) for e in listed] == [
        (failed, "failed", 2, len(BODY)),
        (waiting, "waiting", 1, len(b'{"text": "later"}')),
    ]
    assert listed[0]["channel"] == "hook" and "body" not in listed[0] and "processed_at" not in listed[0]
    assert listed[0]["last_error"].startswith("GraphError: xxx") and listed[0]["last_error"].endswith("…")
    assert len(listed[0]["last_error"]) == 200  # cut: the whole error is in `spool show`
    assert listed[1]["last_error"] is None
    row = await rig.row(failed)
    assert listed[0]["received_at"] == as_utc(row.received_at).isoformat()
    assert listed[0]["claimed_until"] == as_utc(row.claimed_until).isoformat()

    everything = await rig.lines("list", "--all")
    assert [(e["id"], e["state"]) for e in everything] == [
        (failed, "failed"),
        (waiting, "waiting"),
        (processed, "processed"),
    ]
    assert everything[0]["processed_at"] is None and everything[2]["processed_at"] is not None


async def test_show_prints_one_body_decoded_with_replacement(rig: Rig) -> None:
    failed, _, _ = await rig.failed_waiting_processed()
    [shown] = await rig.lines("show", str(failed))
    assert shown["body"] == BODY.decode("utf-8", errors="replace")
    assert shown["body"].endswith('Zażółć gęślą jaźń"}\ufffd')
    assert (shown["id"], shown["state"], shown["last_error"]) == (failed, "failed", ERROR)  # not cut here

    done = await rig.cli("show", "4711")
    assert done.returncode != 0 and done.stdout == ""
    assert "no spooled webhook 4711" in done.stderr


async def test_retry_has_the_next_replay_round_process_a_failed_body(rig: Rig) -> None:
    failed, waiting, _ = await rig.failed_waiting_processed()
    rig.channel.broken = False  # the cause is fixed
    assert await rig.spool.replay(rig.inbox) == 0  # a given-up body is not replayed by itself

    done = await rig.cli("retry", str(failed))
    assert done.returncode == 0, done.stderr
    [reset] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (reset["id"], reset["state"], reset["attempts"]) == (failed, "waiting", 0)
    assert "processes nothing itself" in done.stderr and "supportbot run" in done.stderr
    row = await rig.row(failed)
    assert row.attempts == 0 and row.processed_at is None and as_utc(row.claimed_until) <= utcnow()
    assert rig.channel.replayed == []  # the CLI did not process it

    assert await rig.spool.replay(rig.inbox) == 1  # the running service's next round
    assert rig.channel.replayed == [BODY]
    row = await rig.row(failed)
    assert row.processed_at is not None and row.attempts == 1 and row.last_error is None
    assert (await rig.row(waiting)).attempts == 1  # still its process's: its claim has not run out


async def test_retry_failed_resets_every_given_up_body_and_only_those(rig: Rig) -> None:
    failed, waiting, processed = await rig.failed_waiting_processed()
    await rig.claims_over()
    assert await rig.spool.replay(rig.inbox) == 0  # waiting fails its second attempt: given up too
    later = await rig.spool.keep("hook", b'{"text": "just arrived"}')
    reset = await rig.lines("retry", "--failed")
    assert [(e["id"], e["state"], e["attempts"]) for e in reset] == [
        (failed, "waiting", 0),
        (waiting, "waiting", 0),
    ]
    assert (await rig.row(later)).attempts == 1 and (await rig.row(processed)).attempts == 1

    done = await rig.cli("retry", "--failed")
    assert done.returncode == 0 and done.stdout == ""
    assert "no failed spooled webhooks" in done.stderr


async def test_retry_refuses_unknown_ids_and_processed_bodies_and_changes_nothing(rig: Rig) -> None:
    failed, _, processed = await rig.failed_waiting_processed()

    unknown = await rig.cli("retry", str(failed), "4711")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "no spooled webhook 4711" in unknown.stderr and "nothing was changed" in unknown.stderr

    done = await rig.cli("retry", str(processed))
    assert done.returncode == 2 and done.stdout == ""
    assert f"spooled webhook {processed} was processed at" in done.stderr
    assert "not replayed again" in done.stderr

    row = await rig.row(failed)
    assert row.attempts == 2  # the valid id in the refused command was not reset
    assert (await rig.row(processed)).attempts == 1
