"""The database handle: async engine, sessions, and Alembic migrations at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

from bot.errors import StorageError
from bot.storage import sqlite_driver

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the file and survives a crash of the process; only a power cut
    # can lose the last commits. FULL fsyncs the log on every commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _rollback_if_open(dbapi_connection: Any, record: ConnectionPoolEntry, reset: PoolResetState) -> None:
    """Pool reset for SQLite: roll back a returned connection only while a transaction is still open.

    The default reset rolls back every connection put back in the pool; after a commit (nearly every
    session) that rollback does nothing yet costs a round trip through aiosqlite's thread. SQLite
    says exactly whether a transaction is open, so the ones that need it are still rolled back.
    """
    if reset.terminate_only or not reset.asyncio_safe:
        return  # being closed (which rolls back), or cannot be awaited here (the default skips it too)
    if getattr(record.driver_connection, "in_transaction", True):
        dbapi_connection.rollback()


def _one_hop_cursors(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
    """Connect through `sqlite_driver`: one thread hand-off per statement (same aiosqlite, same sqlite3)."""
    params["async_creator_fn"] = sqlite_driver.connect


class Database:
    """One engine per process; `session()` gives a transaction that commits on success."""

    def __init__(self, url: str, echo: bool = False, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite and ":///" in url:
            path = url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs.update(pool_reset_on_return=None)  # _rollback_if_open does it
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine: AsyncEngine = create_async_engine(url, connect_args=connect_args or {}, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "reset", _rollback_if_open)
            if self.engine.dialect.driver == "aiosqlite" and sqlite_driver.supported():
                event.listen(self.engine.sync_engine, "do_connect", _one_hop_cursors)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(_upgrade)
        except OperationalError as exc:
            raise StorageError(f"cannot reach the database at {self._safe_url()}: {exc.orig}") from exc
        except OSError as exc:
            raise StorageError(f"cannot reach the database at {self._safe_url()}: {exc}") from exc

    async def close(self) -> None:
        await self.engine.dispose()

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Processes started together on a new PostgreSQL database would each create the tables: the first to take
# this lock migrates, the others wait for its commit and find the schema at head (any constant will do).
MIGRATION_LOCK = 0x5B07_0012


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
