"""Make a step wait on the database, to test what happens while it is in flight (both databases).

`held(database, table)`: every statement on `table` waits until the block ends. On PostgreSQL another
connection holds an ACCESS EXCLUSIVE lock (a waiter is seen in pg_locks); on SQLite, whose readers never wait
in WAL mode, an authorizer on each checked-out connection holds the statements naming the table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text

from bot.storage.database import Database


@asynccontextmanager
async def held(database: Database, table: str) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """Make every statement on `table` wait until the block ends; yields "is one waiting now?"."""
    if database.is_sqlite:
        # SQLite readers never wait for a lock in WAL mode: an authorizer, called on the connection's own
        # thread while a statement is prepared, holds the statements that touch the table
        gate, waiting = threading.Event(), threading.Event()

        def authorizer(_action: int, name: str | None, *_: object) -> int:
            if name == table and not gate.is_set():
                waiting.set()
                gate.wait(60)
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
            query = f"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{table}'::regclass"
            return bool(await connection.scalar(text(query)))

    async with database.engine.connect() as connection:
        await connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        yield postgres_waiting
        await connection.rollback()
