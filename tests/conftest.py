"""Shared fixtures: the real model (loaded once), settings, real SQLite and PostgreSQL, a started bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import SupportBot
from bot.config import Settings, load_settings
from bot.handoff.service import LiveHandoff
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from tests.support.channel import RecordingChannel
from tests.support.paths import REPO
from tests.support.services import POSTGRES_URL, postgres_schema


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


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: a fresh SQLite file, or a fresh schema in the PostgreSQL `test` database."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/test.db")
        await db.migrate()
        yield db
        await db.close()
        return
    schema, drop = await postgres_schema()
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    await db.migrate()
    yield db
    await db.close()
    await drop()


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
