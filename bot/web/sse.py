"""Server-sent events: the one loop behind every live stream (the agents' events, the web chat's replies).

A stream is a `read` function and a wake-up: `stream` yields the retry hint, then whatever `read` finds
each time it is woken or every `poll_seconds` (other processes write to the database too), with a comment
line after KEEPALIVE_SECONDS of quiet so proxies keep the connection. It ends when the client leaves or
when `read` says the stream is over (returns None: the agent's log-in session ended, for instance).

Ids are taken at insert but committed later, so a later row can be visible before an earlier one:
`Cursor` only moves past rows old enough to have committed, and remembers the newer ones it has sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from bot.storage.models import as_utc, utcnow

log = logging.getLogger(__name__)

RETRY = "retry: 2000\n\n"  # EventSource reconnects after 2 s (with Last-Event-ID)
KEEPALIVE = ": keepalive\n\n"
KEEPALIVE_SECONDS = 15.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx would hold events back
Row = TypeVar("Row")


def event(data: Any, kind: str | None = None, event_id: int | None = None) -> str:
    """One event: its id (where EventSource resumes), its kind, and `data` as one line of JSON."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    if kind is not None:
        lines.append(f"event: {kind}")
    lines.append(f"data: {json.dumps(data, ensure_ascii=False, default=str)}")
    return "\n".join(lines) + "\n\n"


def response(events: AsyncIterator[str], headers: Mapping[str, str] | None = None) -> StreamingResponse:
    """The HTTP response that carries a `stream`."""
    return StreamingResponse(events, media_type="text/event-stream", headers={**HEADERS, **(headers or {})})


class Cursor:
    """How far a stream has read for good, and what it has already sent beyond that point."""

    def __init__(self, position: int, settle_seconds: float) -> None:
        self.position = position  # every row up to this id has been seen (and sent, if it was for us)
        self._settle = timedelta(seconds=settle_seconds)  # a row older than this has committed
        self._sent: set[int] = set()

    def take(self, rows: Iterable[Row], key: Callable[[Row], tuple[int, datetime | None]]) -> list[Row]:
        """Return the rows (in id order, after `position`) not taken before; move past the settled ones.

        `key` gives a row's id and when it was written (None: long ago).
        """
        rows = list(rows)
        fresh = []
        for row in rows:
            row_id, _ = key(row)
            if row_id not in self._sent:
                self._sent.add(row_id)
                fresh.append(row)
        settled = utcnow() - self._settle
        for row in rows:
            row_id, written = key(row)
            if written is not None and as_utc(written) > settled:
                break
            self.position = row_id
        self._sent = {row_id for row_id in self._sent if row_id > self.position}
        return fresh


async def stream(
    request: Request,
    wake: AbstractAsyncContextManager[asyncio.Event],
    read: Callable[[], Awaitable[list[str] | None]],
    poll_seconds: float,
    what: str,
) -> AsyncIterator[str]:
    """Yield the events `read` returns (formatted with `event`) until the client leaves or `read` gives None.

    `wake` yields the event this process sets when there may be something new; `what` names the stream
    in the log ("webchat: reading the chat of visitor ~1a2b3c4d"). A failed read (a database restart)
    is logged and tried again shortly; the stream stays open.
    """
    yield RETRY
    loop = asyncio.get_running_loop()
    quiet = 0.0
    async with wake as woken:
        while True:
            woken.clear()
            try:
                # Starlette cancels the stream when the client leaves, repeatedly: a read cut off in flight
                # costs its connection (SQLAlchemy invalidates it), so a started read finishes.
                with anyio.CancelScope(shield=True):
                    events = await read()
            except Exception as exc:
                log.warning("%s failed: %s", what, exc)
                events = []
            if events is None:
                return
            for chunk in events:
                yield chunk
            if events:
                quiet = 0.0
                continue  # there may be more: read on before waiting
            if await request.is_disconnected():
                return
            started = loop.time()
            with suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=poll_seconds)
            quiet += loop.time() - started
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield KEEPALIVE
