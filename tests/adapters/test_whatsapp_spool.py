"""The inbound spool behind the WhatsApp webhook: stored before the 200, replayed after a crash, answered once.

Over real HTTP to the real endpoint, with the stand-in Graph API, on SQLite and PostgreSQL. Where a test needs
a step to wait (the spool's insert, or the engine's first read), the table is held: on PostgreSQL by an ACCESS
EXCLUSIVE lock from another connection (seen waiting in pg_locks), on SQLite by an authorizer that holds the
statements naming the table until the test lets them go.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import SpooledWebhook, as_utc, utcnow
from bot.web.app import create_app
from tests.support.db_hold import held
from tests.support.graph_api import GraphApiStub
from tests.support.handoff import wait_for
from tests.support.server import LiveServer, free_port
from tests.support.whatsapp import CUSTOMER, WEBHOOK, Rig, sign, text_webhook, whatsapp_settings

QUESTION = "Jak długo trwa dostawa?"


@pytest.fixture
def spool_settings(
    make_settings: Callable[..., Settings], graph_api: tuple[GraphApiStub, str], delivery_kb: Path
) -> Settings:
    """Settings whose spool leaves a body to its process for 10 ms only, so a test can replay at once."""
    return make_settings(
        kb={"path": str(delivery_kb)},
        channels={"whatsapp": whatsapp_settings(graph_api[1]).model_dump()},
        spool={"grace_seconds": 0.01, "max_attempts": 3},
    )


@asynccontextmanager
async def serving(
    settings: Settings, database: Database, encoder: E5Encoder, graph: GraphApiStub, background: bool = False
) -> AsyncIterator[Rig]:
    """Our service on `database`, served over HTTP; with background, started as `supportbot run` starts it."""
    channel = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0, 0.0))
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    if not background:
        await bot.start(progress=False)
    try:
        async with LiveServer(create_app(bot, start=background)) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                yield Rig(bot, channel, graph, http)
    finally:
        if not background:
            await channel.stop()
            bot.executor.shutdown(wait=False)


async def spooled(database: Database) -> list[SpooledWebhook]:
    async with database.session() as session:
        return list((await session.execute(select(SpooledWebhook).order_by(SpooledWebhook.id))).scalars())


async def grace_over(database: Database) -> None:
    """Let every spooled body's claim have run out, as after spool.grace_seconds."""
    async with database.session() as session:
        await session.execute(update(SpooledWebhook).values(claimed_until=utcnow() - timedelta(seconds=1)))


async def spooled_done(database: Database) -> bool:
    return all(row.processed_at is not None for row in await spooled(database))


def two_messages(first: str, second: str) -> dict[str, Any]:
    """Return one webhook body carrying two customer messages (Meta batches them)."""
    payload = text_webhook(QUESTION, first)
    value = payload["entry"][0]["changes"][0]["value"]
    later = copy.deepcopy(value["messages"][0])
    later.update(id=second, text={"body": "How can I pay for my order?"})
    value["messages"].append(later)
    return payload


async def test_a_webhook_is_acknowledged_only_after_its_row_exists(
    spool_settings: Settings, database: Database, encoder: E5Encoder, graph_api: tuple[GraphApiStub, str]
) -> None:
    body = json.dumps(text_webhook(QUESTION, "wamid.spooled-first")).encode()
    async with serving(spool_settings, database, encoder, graph_api[0]) as rig:
        async with held(database, "inbound_spool") as waiting:
            posting = asyncio.create_task(rig.post(body))
            await wait_for(waiting, what="the spool's insert waiting")
            assert not posting.done()  # the handler waits for the row before it answers
        response = await posting
        assert response.status_code == 200, response.text
        [row] = await spooled(database)  # the row the 200 promised, holding the body as received
        assert (row.channel, row.body) == ("whatsapp", body)
        await rig.channel.drain()
    [row] = await spooled(database)
    assert row.processed_at is not None and row.attempts == 1 and row.last_error is None
    assert len(graph_api[0].sends) == 1


async def test_a_webhook_acknowledged_before_a_crash_is_answered_once_by_the_next_start(
    spool_settings: Settings,
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = graph_api[0]
    async with serving(spool_settings, database, encoder, stub) as first:
        async with held(database, "customers") as engine_waiting:
            response = await first.post(text_webhook(QUESTION, "wamid.before-crash"))
            assert response.status_code == 200
            await wait_for(engine_waiting, what="the engine waiting to store the message")
            # The process dies: its processing task ends where it stands, before the message is stored.
            processing = [t for t in asyncio.all_tasks() if t.get_name() == "whatsapp-webhook"]
            assert processing
            for task in processing:
                task.cancel()
        await asyncio.gather(*processing, return_exceptions=True)
    assert await first.messages("in") == [] and stub.sends == []  # lost, were it not for the spool

    caplog.set_level(logging.WARNING, logger="bot")
    async with serving(spool_settings, database, encoder, stub, background=True) as second:
        # nothing is posted again: the spool's first round, as the service starts, replays the body
        await wait_for(lambda: spooled_done(database), what="the spooled body processed")
        inbound = await second.messages("in")
    assert [m.platform_message_id for m in inbound] == ["wamid.before-crash"]
    assert len(stub.sends) == 1 and stub.sends[0]["to"] == CUSTOMER
    [row] = await spooled(database)
    assert row.processed_at is not None and row.attempts == 2 and row.last_error is None
    assert any("replaying whatsapp webhook" in r.getMessage() for r in caplog.records)


async def test_a_webhook_that_cannot_be_stored_is_refused_with_503_and_not_processed(
    spool_settings: Settings,
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Down: nothing listens on the port (PostgreSQL); the file cannot be opened, it is a folder (SQLite).
    down = (
        f"sqlite+aiosqlite:///{tmp_path}"
        if database.is_sqlite
        else f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    )
    body = json.dumps(text_webhook(QUESTION, "wamid.during-outage")).encode()
    signed = {"X-Hub-Signature-256": sign(body), "Content-Type": "application/json"}
    outage = Database(down)
    channel = WhatsAppChannel(spool_settings.channels.whatsapp, retry_delays=(0.0, 0.0))
    bot = SupportBot(spool_settings, channels=[channel], database=outage)
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            response = await http.post(WEBHOOK, content=body, headers=signed)
            await channel.drain()
    finally:
        await bot.close()
    assert response.status_code == 503  # Meta redelivers what was not acknowledged
    assert response.json() == {"error": "the webhook could not be stored; deliver it again later"}
    assert any("webhook not stored" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert graph_api[0].requests == []

    # The database is back and Meta redelivers: stored, answered, once.
    async with serving(spool_settings, database, encoder, graph_api[0]) as rig:
        response = await rig.http.post(WEBHOOK, content=body, headers=signed)
        assert response.status_code == 200
        await rig.channel.drain()
        assert [m.platform_message_id for m in await rig.messages("in")] == ["wamid.during-outage"]
    assert len(graph_api[0].sends) == 1


async def test_a_replayed_body_gets_no_second_reply_for_messages_already_stored(
    spool_settings: Settings, database: Database, encoder: E5Encoder, graph_api: tuple[GraphApiStub, str]
) -> None:
    stub = graph_api[0]
    async with serving(spool_settings, database, encoder, stub) as rig:
        await rig.deliver(text_webhook(QUESTION, "wamid.first"))
        # Meta batches it with the next message; processed, then the process dies before marking the row
        await rig.deliver(two_messages("wamid.first", "wamid.second"))
        assert len(stub.sends) == 2
        async with database.session() as session:
            await session.execute(
                update(SpooledWebhook).values(
                    processed_at=None, claimed_until=utcnow() - timedelta(seconds=1)
                )
            )
        assert await rig.bot.spool.replay(rig.bot.inbox) == 2  # both bodies processed again
        assert await rig.bot.spool.replay(rig.bot.inbox) == 0  # and now done
        inbound = await rig.messages("in")
    assert [m.platform_message_id for m in inbound] == ["wamid.first", "wamid.second"]
    assert len(stub.sends) == 2  # one answer each, none again
    assert [(row.attempts, row.processed_at is not None) for row in await spooled(database)] == [
        (2, True)
    ] * 2


async def test_a_body_that_keeps_failing_is_kept_with_its_error_and_reported(
    spool_settings: Settings,
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(spool_settings, database, encoder, graph_api[0]) as rig:
        spool, inbox = rig.bot.spool, rig.bot.inbox
        broken = await spool.keep("whatsapp", b"{not json")  # as if a bug let it through
        assert await spool.replay(inbox) == 0  # attempt 2 of 3
        await wait_for(lambda: _claim_over(database), what="the claim to run out")
        assert await spool.replay(inbox) == 0  # attempt 3 of 3: given up
        await wait_for(lambda: _claim_over(database), what="the claim to run out")
        assert await spool.replay(inbox) == 0  # not claimed again
        health = (await rig.http.get("/healthz")).json()
    [row] = await spooled(database)
    assert (row.id, row.attempts, row.processed_at) == (broken, 3, None)
    assert row.last_error is not None and row.last_error.startswith("JSONDecodeError")
    assert health["spool"] == {"waiting": 0, "failed": 1}
    [report] = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert f"webhook {broken} given up after 3 attempts" in report


async def _claim_over(database: Database) -> bool:
    async with database.session() as session:
        until = await session.scalar(select(SpooledWebhook.claimed_until))
    return until is not None and as_utc(until) < utcnow()


@asynccontextmanager
async def table_away(database: Database, table: str) -> AsyncIterator[None]:
    """Rename `table` for the block: every statement on it fails, as while the database is unreachable."""
    async with database.engine.begin() as connection:
        await connection.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


async def test_a_processing_failure_is_retried_kept_in_the_spool_and_replayed_later(
    spool_settings: Settings,
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = graph_api[0]
    async with serving(spool_settings, database, encoder, stub) as rig:
        async with table_away(database, "customers"):
            response = await rig.post(text_webhook(QUESTION, "wamid.while-failing"))
            assert response.status_code == 200  # stored: the spool's own table is fine
            await rig.channel.drain()
        assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
        [failure] = [r.getMessage() for r in caplog.records if "not processed after" in r.getMessage()]
        assert "wamid.while-failing" in failure and "after 3 attempts" in failure
        [row] = await spooled(database)
        assert row.processed_at is None and row.attempts == 1
        assert row.last_error is not None and "wamid.while-failing" in row.last_error
        assert await rig.messages("in") == [] and stub.sends == []

        assert await rig.bot.spool.replay(rig.bot.inbox) == 1  # the next round, with the table back
        inbound = await rig.messages("in")
    assert [m.platform_message_id for m in inbound] == ["wamid.while-failing"]
    assert len(stub.sends) == 1
    [row] = await spooled(database)
    assert row.processed_at is not None and row.attempts == 2 and row.last_error is None


async def test_two_processes_replaying_at_once_take_each_body_once(
    make_settings: Callable[..., Settings],
    delivery_kb: Path,
    database: Database,
    encoder: E5Encoder,
    graph_api: tuple[GraphApiStub, str],
) -> None:
    """Two services on one database, each with its own engine (its own connections), replay together."""
    settings = make_settings(
        kb={"path": str(delivery_kb)},
        channels={"whatsapp": whatsapp_settings(graph_api[1]).model_dump()},
        spool={"grace_seconds": 60},  # a claim outlives the round: no process takes a body another holds
    )
    connect_args: dict[str, Any] = {}
    if not database.is_sqlite:
        async with database.engine.connect() as connection:
            search_path = await connection.scalar(text("SHOW search_path"))
        connect_args = {"server_settings": {"search_path": search_path}}
    other = Database(database.url, connect_args=connect_args)
    customers = [f"4860010{n:04d}" for n in range(12)]
    try:
        async with (
            serving(settings, database, encoder, graph_api[0]) as first,
            serving(settings, other, encoder, graph_api[0]) as second,
        ):
            for number, customer in enumerate(customers):  # acknowledged, then the process died
                payload = text_webhook(QUESTION, f"wamid.both-{number}", wa_id=customer)
                await first.bot.spool.keep("whatsapp", json.dumps(payload).encode())
            await grace_over(database)
            done = await asyncio.gather(
                first.bot.spool.replay(first.bot.inbox), second.bot.spool.replay(second.bot.inbox)
            )
            inbound = await first.messages("in")
    finally:
        await other.close()
    assert sum(done) == len(customers)
    assert [row.attempts for row in await spooled(database)] == [2] * len(customers)  # each claimed once
    assert len(inbound) == len(customers)
    assert sorted(body["to"] for body in graph_api[0].sends) == customers
