"""The Telegram agent desk as `supportbot run` runs it: wiring, the background loop, its health.

The desk sits beside the live desk (bot/handoff/), not inside it: it reads the handoff's audit trail
(bot/desk/follower.py), sends its stored posts to the forum group (sender.py) and turns agents' messages
in the group into the handoff's moves (inbound.py). The customer bot's Telegram channel hands it the
group's updates, polling or webhook alike, on the same bot token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

from bot.adapters.base import Channel
from bot.adapters.telegram import TelegramChannel
from bot.config import AgentDeskSettings, Settings
from bot.desk.follower import Follower
from bot.desk.inbound import Inbound
from bot.desk.sender import Sender
from bot.desk.store import HEALTH, counts, purge, release_lease, state_row, take_lease
from bot.desk.transport import DeskApi
from bot.handoff.base import Handoff
from bot.handoff.live import LiveHandoff
from bot.storage.models import utcnow

log = logging.getLogger(__name__)
PURGE_EVERY = 3600.0  # seconds between clean-ups of the desk's sent posts
KEEP_POSTS = timedelta(
    days=7
)  # sent posts and handled-update marks are kept this long (redeliveries come sooner)


class TelegramDesk:
    """Agents work handed-off conversations from a Telegram forum group (channels.telegram.agent_desk)."""

    def __init__(self, settings: AgentDeskSettings, handoff: LiveHandoff, channel: TelegramChannel) -> None:
        if settings.chat_id is None:
            raise ValueError("channels.telegram.agent_desk.chat_id is not set")
        self.settings = settings
        self.chat_id = settings.chat_id
        self.handoff = handoff
        self.channel = channel
        self.database = handoff.database
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self.api = DeskApi(channel, self.chat_id)
        self.follower = Follower(self.chat_id, settings.general_thread_id)
        self.sender = Sender(self.database, self.api, settings.general_thread_id, settings.max_attempts)
        self.inbound = Inbound(handoff, self.chat_id, self.wake)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = -math.inf

    @classmethod
    def configured(
        cls, settings: Settings, handoff: Handoff, channels: dict[str, Channel]
    ) -> TelegramDesk | None:
        """The desk when agent_desk.chat_id is set and the aiogram Telegram channel and live desk run."""
        desk_settings = settings.channels.telegram.agent_desk
        if desk_settings.chat_id is None:
            return None
        channel = channels.get("telegram")
        if not isinstance(channel, TelegramChannel) or not isinstance(handoff, LiveHandoff):
            log.error(
                "telegram desk: agent_desk.chat_id is set, but the Telegram channel (token) is not: no desk"
            )
            return None
        return cls(desk_settings, handoff, channel)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """Take the group's updates from the channel and run the loop (until `close`)."""
        self.channel.group_listener = self.inbound.handle
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="telegram-desk")

    async def close(self) -> None:
        self.channel.group_listener = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            with suppress(Exception):
                async with self.database.session() as session:
                    await release_lease(session, self.holder)

    async def run(self) -> None:
        """Follow the handoff's events and send the posts, woken by every move in this process."""
        async with self.handoff.notifier.subscribe() as moved:
            while True:
                try:
                    await self.tick()
                except Exception:  # a database restart: log, wait, keep going
                    log.exception("telegram desk round failed; retrying")
                waits = [asyncio.ensure_future(moved.wait()), asyncio.ensure_future(self._wake.wait())]
                with suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED), self.settings.poll_seconds
                    )
                for waiter in waits:
                    waiter.cancel()
                moved.clear()
                self._wake.clear()

    async def tick(self) -> int:
        """One round, if this process holds the lease: events to posts, posts to Telegram; return posts sent."""
        async with self.database.session() as session:
            if not await take_lease(session, self.holder, self.settings.lease_seconds, utcnow()):
                return 0
        while True:
            async with self.database.session() as session:
                read = await self.follower.round(session)
            if not read:
                break
        sent = await self.sender.round()
        if time.monotonic() - self._last_purge >= PURGE_EVERY:
            self._last_purge = time.monotonic()
            async with self.database.session() as session:
                await purge(session, utcnow() - KEEP_POSTS)
        return sent

    async def health(self) -> dict[str, Any]:
        """For /healthz: the group's state, posts waiting or given up, topics deleted by hand."""
        async with self.database.session() as session:
            found = await counts(session)
            problem = (await state_row(session, HEALTH)).status
        problems = [problem] if problem else []
        if found["topics_gone"]:
            problems.append(f"{found['topics_gone']} topic(s) deleted in the group")
        return {"chat_id": self.chat_id, "status": "; ".join(problems) or "ok", **found}
