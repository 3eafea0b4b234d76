"""aiosqlite with one thread hand-off per SQL statement instead of four.

aiosqlite runs every call on the connection's own thread: SQLAlchemy's adapter makes four of them per
statement (open a cursor, execute, fetch the rows, close the cursor), each a queue hand-off to that
thread and a wake-up of the event loop on the way back (~30 us of CPU each on the bench machine). A turn
stores a message in about five statements plus a commit, so this was ~20 hand-offs per message. Here
a cursor does all four steps in one call on the connection's thread and keeps the description, row
count and rows for SQLAlchemy to read; commits, rollbacks and everything else stay aiosqlite's own.

Statements, transactions and errors are exactly sqlite3's: only where the steps run changed (all on the
connection's thread, as before). Installed on SQLite URLs by `bot.storage.database.Database`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from threading import Thread
from typing import Any

import aiosqlite

_Outcome = tuple[Any, int, int | None, list[Any] | None]


def supported() -> bool:
    """True when this aiosqlite has the (internal) hooks the one-hop cursor needs."""
    return callable(getattr(aiosqlite.Connection, "_execute", None)) and isinstance(
        getattr(aiosqlite.Connection, "_conn", None), property
    )


def _run(connection: sqlite3.Connection, call: Callable[[sqlite3.Cursor], object]) -> _Outcome:
    """On the connection's thread: execute, read everything SQLAlchemy will read, close the cursor."""
    cursor = connection.cursor()
    try:
        call(cursor)
        description = cursor.description
        rows = cursor.fetchall() if description is not None else None
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor:
    """The part of `aiosqlite.Cursor` SQLAlchemy uses; each execute is one call on the connection's thread."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def _call(self, call: Callable[[sqlite3.Cursor], object]) -> OneHopCursor:
        connection = self._connection
        outcome: _Outcome = await connection._execute(_run, connection._conn, call)
        self.description, self.rowcount, self.lastrowid, rows = outcome
        self._rows = rows or []
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        if parameters is None:
            return await self._call(lambda cursor: cursor.execute(sql))
        return await self._call(lambda cursor: cursor.execute(sql, parameters))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        rows = list(parameters)
        return await self._call(lambda cursor: cursor.executemany(sql, rows))

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = size or self.arraysize
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []  # the sqlite3 cursor was closed on the connection's thread already

    async def __aiter__(self) -> AsyncIterator[Any]:
        while self._rows:
            yield self._rows.pop(0)

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, OneHopCursor]:
        return self.__aenter__().__await__()  # `await connection.cursor()` works as with aiosqlite


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors execute in one hand-off (see the module docstring)."""

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)


def connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """`aiosqlite.connect`, returning a connection with one-hop cursors (same thread, same sqlite3)."""
    connection = aiosqlite.connect(*args, **kwargs)
    connection.__class__ = OneHopConnection
    thread = connection if isinstance(connection, Thread) else connection._thread  # Thread before 0.22
    thread.daemon = True  # as SQLAlchemy sets it for aiosqlite's own connections
    return connection
