"""A client that leaves an event stream while its database read is under way does not cut the read off.

Starlette cancels a streaming response when the client disconnects, and it cancels it again and again
(anyio's cancellation is level-triggered). A read cancelled in flight makes SQLAlchemy invalidate the
connection and start a graceful close that the next cancellation abandons: the connection is lost and the
abandoned close task is later destroyed pending ("Task was destroyed but it is pending!", logged as an
error in whatever runs then; it failed an unrelated test in CI). Both event streams (the agents' and the
web chat's) finish a read they have started, then end.

To be sure the read is in flight when the client leaves, the read is made to wait (tests/support/db_hold.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.db_hold import held
from tests.support.handoff import Api, http_client, make_agent, wait_for, webchat_bot
from tests.support.server import LiveServer


@pytest.fixture
async def streambot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> AsyncIterator[SupportBot]:
    """A started bot with the web chat channel, the agents' API and both event streams."""
    settings = make_settings(channels={"webchat": {"poll_seconds": 0.2}})
    async with webchat_bot(settings, database, encoder) as instance:
        yield instance


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
            async with held(database, table) as read_waiting:
                await wait_for(read_waiting, 10, "the stream's next read waiting")  # it reads every second
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
