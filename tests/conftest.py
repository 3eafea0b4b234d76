"""Shared fixtures: the real model (loaded once), real SQLite and PostgreSQL, a live HTTP server."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn

from bot.adapters.base import Channel, DeliveryTarget
from bot.app import SupportBot
from bot.config import Settings, load_settings
from bot.errors import SendError
from bot.handoff.service import LiveHandoff
from bot.messages import IncomingMessage, OutgoingReply
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "SUPPORTBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def encoder() -> E5Encoder:
    """The default model, loaded once per test session."""
    return E5Encoder()


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index cache for the session, so the demo KB is embedded once."""
    return tmp_path_factory.mktemp("index")


@pytest.fixture
def make_settings(tmp_path: Path, index_cache: Path) -> Callable[..., Settings]:
    """Build settings from the shipped config.yaml with test overrides (deep-merged)."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
            "embedding": {"cache_dir": str(index_cache)},
            "policy": {"calibration_file": None},
        }
        for key, value in overrides.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        return load_settings(REPO / "config.yaml", **base)

    return factory


async def _postgres_schema() -> tuple[str, Callable[[], Any]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    await connection.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    return schema, drop


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: a fresh SQLite file, or a fresh schema in the PostgreSQL `test` database."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/test.db")
        await db.migrate()
        yield db
        await db.close()
        return
    schema, drop = await _postgres_schema()
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    await db.migrate()
    yield db
    await db.close()
    await drop()


class RecordingChannel(Channel):
    """A channel that records what it was asked to send; can fail on demand."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.sent: list[tuple[DeliveryTarget, OutgoingReply]] = []
        self.fail_next: list[SendError] = []

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append((target, reply))
        return f"p{len(self.sent)}"


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
async def bot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, channel: RecordingChannel
) -> AsyncIterator[SupportBot]:
    """A started SupportBot on the demo KB, over SQLite and PostgreSQL, with a recording channel."""
    instance = SupportBot(make_settings(), channels=[channel], encoder=encoder, database=database)
    await instance.start(progress=False)
    yield instance
    if isinstance(instance.handoff, LiveHandoff):
        await instance.handoff.close()  # background work (deliveries, context providers) ends with the test
    instance.executor.shutdown(wait=False)


@contextmanager
def hung_model(bot: SupportBot, monkeypatch: pytest.MonkeyPatch, deadline: float) -> Iterator[None]:
    """Fault injection: in the block, model calls block (until the block ends) and the engine gives up on a
    message after `deadline` seconds (policy.understanding_timeout_seconds). A hang cannot be had on demand."""
    matcher = bot.matcher()
    understand_many = matcher.understand_many
    release = threading.Event()

    def hung(texts: list[str]) -> object:
        release.wait(30)
        return understand_many(texts)

    monkeypatch.setattr(matcher, "understand_many", hung)
    monkeypatch.setattr(bot.settings.policy, "understanding_timeout_seconds", deadline)
    try:
        yield
    finally:
        release.set()
        monkeypatch.setattr(matcher, "understand_many", understand_many)


def incoming(
    text: str = "", *, customer: str = "c1", msg_id: str | None = None, **kwargs: Any
) -> IncomingMessage:
    """Build a message from customer `customer` on the test channel."""
    return IncomingMessage(
        channel="test",
        chat_id=customer,
        customer_id=customer,
        text=text,
        platform_message_id=msg_id or uuid.uuid4().hex,
        **kwargs,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """Runs an ASGI app with uvicorn on 127.0.0.1 inside the test's event loop."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level)
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                return self
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        raise RuntimeError("uvicorn did not start")

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task:
            await self._task
