"""The support flow inside an existing aiogram 3 bot: a Router that the bot's Dispatcher includes.

    dp = Dispatcher()
    dp.include_router(my_router)                   # the team's own handlers first, as before
    dp.include_router(support_router(settings))    # then supportbot takes what they leave
    await dp.start_polling(bot)

Updates go through the same parser and engine as the stand-alone aiogram channel; replies (the bot's and
the agents') are sent with the Dispatcher's own Bot, so its session and API server apply to them too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiogram import Bot, F, Router
from aiogram.types import Update

from bot.adapters.base import Inbox
from bot.adapters.telegram import TelegramChannel
from bot.adapters.telegram_base import TelegramChannelBase
from bot.config import Settings

if TYPE_CHECKING:
    from bot.app import SupportBot

log = logging.getLogger(__name__)


def support_router(app_settings: Settings, support_bot: SupportBot | None = None) -> Router:
    """Return a Router giving a Dispatcher the support bot's behaviour; include it after your own.

    Without `support_bot`, one is built from `app_settings` and started on the first update (migration and
    model loading take a few seconds then); register `AiogramSupport.on_startup` to start it eagerly.
    """
    return AiogramSupport(app_settings, support_bot).router


class DispatcherBotChannel(TelegramChannel):
    """The aiogram channel's Bot API calls, made with the host Dispatcher's Bot instead of one of our own."""

    def __init__(self, retry_delays: Sequence[float] = (0.5, 2.0, 8.0)) -> None:
        # No token, polling or webhook of our own: the Dispatcher has them. Only the transport is shared.
        TelegramChannelBase.__init__(self, retry_delays)

    def use(self, bot: Bot) -> None:
        """Send with `bot` (the Dispatcher's, handed to every handler)."""
        self.bot = bot

    async def start(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def stop(self) -> None:
        """Nothing to stop: the Dispatcher owns polling and the Bot's session."""

    def router(self, inbox: Inbox) -> None:
        return None


class AiogramSupport:
    """The support bot mounted in an aiogram Dispatcher: a Router, plus optional startup/shutdown hooks."""

    def __init__(
        self,
        app_settings: Settings,
        support_bot: SupportBot | None = None,
        retry_delays: Sequence[float] = (0.5, 2.0, 8.0),
    ) -> None:
        self.settings = app_settings
        self.channel = DispatcherBotChannel(retry_delays)
        self.support_bot = support_bot
        self._owns_bot = support_bot is None
        if support_bot is not None:
            support_bot.add_channel(self.channel)  # agents' replies to Telegram customers go out through it
        self._starting = asyncio.Lock()
        self.router = self._make_router()

    def _make_router(self) -> Router:
        """Private-chat messages and edits, our own buttons, and block/unblock notices; nothing else."""
        router = Router(name="supportbot")
        private = F.chat.type == "private"
        router.message.register(self.handle, private)
        router.edited_message.register(self.handle, private)
        router.callback_query.register(self.handle, F.data.func(TelegramChannelBase.owns_callback))
        router.my_chat_member.register(self.handle, private)
        return router

    async def on_startup(self, bot: Bot) -> None:
        """Start the support bot with the Dispatcher (dp.startup.register(support.on_startup))."""
        self.channel.use(bot)
        await self._ensure_started()

    async def on_shutdown(self) -> None:
        """Stop the support bot we started (dp.shutdown.register(support.on_shutdown))."""
        if self._owns_bot and self.support_bot is not None:
            await self.support_bot.close()
            self.support_bot = None

    async def handle(self, event: Any, event_update: Update, bot: Bot) -> None:
        """Handle one update like the stand-alone channel does: store, answer, acknowledge."""
        self.channel.use(bot)
        raw = event_update.model_dump(mode="json", by_alias=True, exclude_none=True)  # Bot API JSON again
        try:
            support = await self._ensure_started()
            await self.channel.process_update(support.inbox, raw)
        except Exception:
            # the Dispatcher confirms the update to Telegram whatever we do: the log is where it survives
            log.exception(
                "telegram (aiogram router): update not processed; raw update for replay: %s",
                json.dumps(raw, ensure_ascii=False, default=str),
            )

    async def _ensure_started(self) -> SupportBot:
        async with self._starting:
            if self.support_bot is None:
                from bot.app import SupportBot  # the integration wires a whole bot; adapters alone do not

                support = SupportBot(self.settings, channels=[self.channel])
                await support.start(background=True)
                self.support_bot = support
            return self.support_bot
