"""Hot reload of kb/ and intents/: one reload at a time, its state visible, the watcher never dies.

`ContentReloads` watches the content files' modification times and reloads when they change; the
content-edit API asks it to apply an edit now (`apply`). A reload that fails (a broken or oversized file,
or any exception at all) keeps the content in service and records why; /healthz shows the state
(`loaded`, `reloading` with since when, or `failed` with the error and the file) and the log says when a
reload starts, how long it took, and what it loaded. The loading itself (parse, check, embed only the new
sentences) runs in a worker thread; every content file is at most MAX_FILE_BYTES (bot/content/yamlfile.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.content.yamlfile import content_files
from bot.errors import ContentError
from bot.storage.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class ContentState:
    """What /healthz reports of the content: the state, since when, and why the last reload failed."""

    state: str = "loaded"  # loaded / reloading / failed (the previous content stays in service)
    since: datetime | None = None
    entries: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "since": self.since.isoformat(timespec="seconds") if self.since else None,
            "entries": self.entries,
            "error": self.error,
        }


class ContentReloads:
    """Reloads the content when its files change, or when asked; see the module docstring."""

    def __init__(self, folders: Callable[[], list[Path]], load: Callable[[], Awaitable[int]]) -> None:
        self._folders = folders
        self._load = load  # loads and puts in service; returns the number of KB entries; raises on failure
        self._lock = asyncio.Lock()
        self._stamp = self.stamp()
        self.state = ContentState(since=utcnow())

    def loaded(self, entries: int) -> None:
        """Record the content loaded at start."""
        self._stamp = self.stamp()
        self.state = ContentState("loaded", utcnow(), entries)

    def stamp(self) -> tuple[tuple[str, float, int], ...]:
        stamps = []
        for folder in self._folders():
            with suppress(ContentError, OSError):
                for path in content_files(folder):
                    stat = path.stat()
                    stamps.append((str(path), stat.st_mtime, stat.st_size))
        return tuple(stamps)

    async def reload(self) -> bool:
        """Reload now (after any reload under way); return whether the content on disk is in service."""
        async with self._lock:
            self._stamp = self.stamp()
            previous = self.state.entries
            self.state = ContentState("reloading", utcnow(), previous)
            started = time.monotonic()
            log.info("content changed on disk: reloading kb/ and intents/")
            try:
                entries = await self._load()
            except Exception as exc:  # a broken file, or anything else: the old content stays
                error = (
                    "\n".join(exc.problems)
                    if isinstance(exc, ContentError)
                    else f"{type(exc).__name__}: {exc}"
                )
                self.state = ContentState("failed", utcnow(), previous, error)
                if isinstance(exc, ContentError):
                    log.error("knowledge base not reloaded, keeping the previous one:\n%s", error)
                else:
                    log.exception("knowledge base not reloaded (keeping the previous one)")
                return False
            self.state = ContentState("loaded", utcnow(), entries)
            log.info("knowledge base reloaded: %d entries in %.1f s", entries, time.monotonic() - started)
            return True

    async def apply(self, wait_seconds: float) -> tuple[bool, str]:
        """Reload for an edit just written; return whether it is in service, and what to tell the editor."""
        task = asyncio.ensure_future(self.reload())
        try:
            done = await asyncio.wait_for(asyncio.shield(task), wait_seconds)
        except TimeoutError:
            return (
                False,
                f"written, but not in service yet: the reload is still running after {wait_seconds:g} s",
            )
        if done:
            return True, "in service"
        return False, f"written, but the content could not be reloaded: {self.state.error}"

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever the files change; survive anything (a background task of `supportbot run`)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.stamp() != self._stamp:
                    await self.reload()
            except Exception:  # never reached by design; if it is, the watcher still goes on
                log.exception("content watcher: unexpected error; still watching")
