"""Shared fixtures (the real model, settings, real SQLite and PostgreSQL, a started bot) and service markers."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import SupportBot
from bot.config import Settings, load_settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from tests.support.channel import RecordingChannel
from tests.support.paths import REPO
from tests.support.services import POSTGRES_URL, PROBES, postgres_schema, services_required

pytest_plugins = ["pytester"]  # tests/test_services.py runs pytest on a tiny suite


@pytest.fixture(scope="session")
def encoder() -> E5Encoder:
    """The default model, loaded once per test session."""
    return E5Encoder()


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index cache for the session, so the demo KB is embedded once (SUPPORTBOT_TEST_INDEX_CACHE: a
    folder kept between runs, for working on a few test files without embedding the KB each time)."""
    kept = os.environ.get("SUPPORTBOT_TEST_INDEX_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("index")


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
    await instance.handoff.close()  # background work (deliveries, context providers) ends with the test
    instance.executor.shutdown(wait=False)


# --- services: PostgreSQL, Redis and Chromium, marked, probed once, skipped (or failed in CI) when down ------

_PROBLEMS = pytest.StashKey[dict[str, str]]()  # marker -> why its service cannot be used
_STOPPED = pytest.StashKey[Counter[tuple[str, str]]]()  # (skipped | failed, marker) -> tests


def _needs(item: pytest.Item) -> set[str]:
    """The service markers `item` gets without writing them: its database or limiter param, its fixtures."""
    params = getattr(item, "callspec", None)
    values = {v for v in params.params.values() if isinstance(v, str)} if params else set()
    needs = {marker for marker in ("postgres", "redis") if marker in values}  # database/databases, limiter
    if "redis_prefix" in getattr(item, "fixturenames", ()):  # its teardown deletes keys in Redis
        needs.add("redis")
    return needs


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: probe only for the tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(_needs(item) - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)
    wanted = {m.name for item in items for m in item.iter_markers() if m.name in PROBES}
    problems = {marker: PROBES[marker]() for marker in sorted(wanted)}
    config.stash[_PROBLEMS] = {marker: problem for marker, problem in problems.items() if problem}
    config.stash[_STOPPED] = Counter()


@pytest.hookimpl(tryfirst=True)  # before any fixture connects to a server that is not there
def pytest_runtest_setup(item: pytest.Item) -> None:
    problems = item.config.stash.get(_PROBLEMS, {})
    missing = sorted({m.name for m in item.iter_markers()} & problems.keys())
    if not missing:
        return
    outcome = "failed" if services_required() else "skipped"
    for marker in missing:
        item.config.stash[_STOPPED][outcome, marker] += 1
    reason = "; ".join(problems[marker] for marker in missing)
    if outcome == "failed":
        pytest.fail(f"{reason} [SUPPORTBOT_TEST_REQUIRE_SERVICES is set]", pytrace=False)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    problems = config.stash.get(_PROBLEMS, {})
    for (outcome, marker), count in sorted(config.stash.get(_STOPPED, Counter()).items()):
        terminalreporter.write_line(
            f"supportbot: {outcome} {count} {marker} tests: {problems[marker]}", red=outcome == "failed"
        )
