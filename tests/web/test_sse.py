"""The server-sent-events helper both live streams use: the wire format, the settling cursor, and a
stream that outlives a failed read and ends when its source says so or the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.storage.models import utcnow
from bot.web import sse


class Client:
    """Stands in for the request: connected until told otherwise."""

    def __init__(self) -> None:
        self.gone = False

    async def is_disconnected(self) -> bool:
        return self.gone


@contextlib.asynccontextmanager
async def wake_up() -> AsyncIterator[asyncio.Event]:
    yield asyncio.Event()


def test_an_event_is_its_id_kind_and_one_line_of_json() -> None:
    assert sse.event({"text": "Zażółć\ngęślą"}, "message", 7) == (
        'id: 7\nevent: message\ndata: {"text": "Zażółć\\ngęślą"}\n\n'
    )
    assert sse.event({"state": "bot"}, "status") == 'event: status\ndata: {"state": "bot"}\n\n'


def test_the_cursor_moves_only_past_rows_old_enough_to_have_committed() -> None:
    cursor = sse.Cursor(10, settle_seconds=30)
    old, new = utcnow() - timedelta(minutes=5), utcnow()
    rows: list[tuple[int, datetime | None]] = [(11, old), (12, None), (13, new), (14, old)]
    assert cursor.take(rows, lambda row: row) == rows
    assert cursor.position == 12  # 13 may still have company below it: read again from there
    assert cursor.take([(13, new), (14, old), (15, new)], lambda row: row) == [(15, new)]  # none twice


async def test_a_stream_outlives_a_failed_read_and_ends_when_its_source_says_so() -> None:
    reads: list[str] = []

    async def read() -> list[str] | None:
        reads.append("read")
        if len(reads) == 1:
            raise ConnectionError("the database restarted")
        return [sse.event({"n": len(reads)})] if len(reads) == 2 else None

    request: Any = Client()
    chunks = [chunk async for chunk in sse.stream(request, wake_up(), read, 0.01, "test stream")]
    assert chunks == [sse.RETRY, 'data: {"n": 2}\n\n']
    assert len(reads) == 3  # failed, read, over


async def test_a_stream_ends_when_the_client_leaves_and_keeps_quiet_connections_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.03)
    client = Client()

    async def read() -> list[str]:
        return []

    request: Any = client
    chunks = []
    async for chunk in sse.stream(request, wake_up(), read, 0.01, "test stream"):
        chunks.append(chunk)
        if sse.KEEPALIVE in chunks:
            client.gone = True
    assert chunks == [sse.RETRY, sse.KEEPALIVE]
