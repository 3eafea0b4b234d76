"""The servers some tests need besides SQLite: PostgreSQL and Redis, found through environment variables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

POSTGRES_URL = os.environ.get(
    "SUPPORTBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
