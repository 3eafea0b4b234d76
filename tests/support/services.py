"""The servers some tests need besides SQLite (PostgreSQL, Redis, Chromium): where they are, and if they are up.

Tests that need one carry its marker (`postgres`, `redis`, `browser`; tests/conftest.py sets most of them).
Each service is probed once per session; a marked test whose service is down is skipped with the reason, or
fails with it when SUPPORTBOT_TEST_REQUIRE_SERVICES=1 (as in CI, where a skip would hide a broken set-up).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import redis

POSTGRES_URL = os.environ.get(
    "SUPPORTBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"
REQUIRE = "SUPPORTBOT_TEST_REQUIRE_SERVICES"
PROBE_TIMEOUT = 2.0  # seconds; a server that is up answers in milliseconds


async def postgres_schema() -> tuple[str, Callable[[], Any]]:
    """Create a fresh schema in the PostgreSQL test database; return its name and a function that drops it."""
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


def services_required() -> bool:
    """True when a missing service must fail its tests instead of skipping them (CI sets the variable)."""
    return os.environ.get(REQUIRE, "") not in ("", "0")


def _shown(url: str) -> str:
    """Return `url` as people write it: no SQLAlchemy driver suffix, no password."""
    return re.sub(
        r"://([^:/@]+):[^@/]*@", r"://\1:***@", url.replace("postgresql+asyncpg://", "postgresql://")
    )


def _failure(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:119] + "…"


def probe_postgres(url: str = POSTGRES_URL) -> str | None:
    """Connect to PostgreSQL once (2 s at most)."""

    async def connect() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT)
        await connection.close()

    try:
        asyncio.run(asyncio.wait_for(connect(), PROBE_TIMEOUT + 1))
    except Exception as exc:
        return (
            f"PostgreSQL not reachable at {_shown(url)}: {_failure(exc)} "
            "(start it, or set SUPPORTBOT_TEST_POSTGRES_URL)"
        )
    return None


def probe_redis(url: str = REDIS_URL) -> str | None:
    """PING Redis once (2 s at most)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return (
            f"Redis not reachable at {_shown(url)}: {_failure(exc)} "
            "(start it, or set SUPPORTBOT_TEST_REDIS_URL)"
        )
    return None


def probe_browser() -> str | None:
    """Look for Debian's Chromium and the playwright package that drives it."""
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (make install-dev)"
    return None


# marker -> probe: None when the service is usable, else what is wrong and how to fix it
PROBES: dict[str, Callable[[], str | None]] = {
    "postgres": probe_postgres,
    "redis": probe_redis,
    "browser": probe_browser,
}
