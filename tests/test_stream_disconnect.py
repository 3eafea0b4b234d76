"""A client that leaves an event stream while its database read is under way does not cut the read off.

Starlette cancels a streaming response when the client disconnects, and it cancels it again and again
(anyio's cancellation is level-triggered). A read cancelled in flight makes SQLAlchemy invalidate the
connection and start a graceful close that the next cancellation abandons: the connection is lost and the
abandoned close task is later destroyed pending ("Task was destroyed but it is pending!", logged as an
error in whatever runs then; it failed an unrelated test in CI). Both event streams (the agents' and the
web chat's) finish a read they have started, then end.

To be sure the read is in flight when the client leaves, the read is made to wait: on PostgreSQL for an
ACCESS EXCLUSIVE table lock held by another connection (seen waiting in pg_locks), on SQLite in an
authorizer that holds statements reading the table until the test lets them go.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web import create_app
from tests.conftest import LiveServer
from tests.handoff_support import Api, http_client, make_agent, wait_for, webchat_bot


@pytest.fixture
async def streambot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> AsyncIterator[SupportBot]:
    """A started bot with the web chat channel, the agents' API and both event streams."""
    settings = make_settings(channels={"webchat": {"poll_seconds": 0.2}})
    async with webchat_bot(settings, database, encoder) as instance:
        yield instance


@asynccontextmanager
async def reads_held(database: Database, table: str) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """Make every read of `table` wait until the block ends; yields "is a read waiting now?"."""
    if database.is_sqlite:
        # SQLite readers never wait for a lock in WAL mode: an authorizer (called on the connection's
        # own thread while a statement is prepared) holds the statements that read the table.
        gate, waiting = threading.Event(), threading.Event()

        def authorizer(action: int, name: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_READ and name == table and not gate.is_set():
                waiting.set()
                gate.wait(30)
            return sqlite3.SQLITE_OK

        def hold(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            # setting an authorizer expires the connection's prepared statements: cached ones ask too
            dbapi_connection.driver_connection._conn.set_authorizer(authorizer)

        async def sqlite_waiting() -> bool:
            return waiting.is_set()

        event.listen(database.engine.sync_engine, "checkout", hold)
        try:
            yield sqlite_waiting
        finally:
            gate.set()
            event.remove(database.engine.sync_engine, "checkout", hold)
        return

    async def postgres_waiting() -> bool:
        async with database.engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            return bool(count)

    async with database.engine.connect() as connection:
        await connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        yield postgres_waiting
        await connection.rollback()


@asynccontextmanager
async def watched_pool(database: Database) -> AsyncIterator[list[BaseException | None]]:
    """Collect every connection the pool invalidates in the block."""
    invalidated: list[BaseException | None] = []

    def on_invalidate(_connection: Any, _record: Any, exception: BaseException | None) -> None:
        invalidated.append(exception)

    event.listen(database.engine.sync_engine, "invalidate", on_invalidate)
    try:
        yield invalidated
    finally:
        event.remove(database.engine.sync_engine, "invalidate", on_invalidate)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen within 10 s: {what}")


async def leave_during_a_read(
    database: Database, server: str, path: str, headers: dict[str, str], table: str
) -> list[BaseException | None]:
    """Open the stream at `path`, leave while its read of `table` waits; the connections invalidated."""
    pool: Any = database.engine.pool
    async with http_client(server) as client, watched_pool(database) as invalidated:
        idle = pool.checkedout()
        async with client.stream("GET", path, headers=headers, timeout=30) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()  # kept: a dropped generator's finaliser would close the stream
            assert await anext(lines) == "retry: 2000"
            async with reads_held(database, table) as read_waiting:
                await eventually(read_waiting, "the stream's next read waiting")  # it reads every second
                await response.aclose()
                await asyncio.sleep(0.5)  # the server sees the client gone and cancels the stream
        await wait_for(lambda: pool.checkedout() <= idle, 20, "every connection back in the pool")
    return invalidated


async def test_an_agent_leaving_the_event_stream_mid_read_loses_no_connection(streambot: SupportBot) -> None:
    await make_agent(streambot.database, "olga")
    async with LiveServer(create_app(streambot, start=False)) as server, http_client(server.url) as client:
        agent = await Api.login(client, "olga")
        invalidated = await leave_during_a_read(
            streambot.database, server.url, "/api/v1/events", agent.headers, "events"
        )
    assert invalidated == []


async def test_a_visitor_leaving_the_web_chat_stream_mid_read_loses_no_connection(
    streambot: SupportBot,
) -> None:
    headers = {"X-Visitor-Id": uuid.uuid4().hex}
    async with LiveServer(create_app(streambot, start=False)) as server:
        invalidated = await leave_during_a_read(
            streambot.database, server.url, "/api/v1/webchat/events", headers, "customers"
        )
    assert invalidated == []
