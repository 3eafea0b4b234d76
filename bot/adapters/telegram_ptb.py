"""The support flow inside an existing python-telegram-bot (v22) Application.

    app = ApplicationBuilder().token(token).base_url(api_base_url(settings.channels.telegram)).build()
    app.add_handler(CommandHandler("orders", my_orders))     # the team's own handlers first
    app.add_handlers(support_handlers(settings))            # then ours take everything else
    app.run_polling()

Updates go through the same parser and the same engine as the aiogram channel; replies are sent with
the Application's own Bot, so `base_url` (a self-hosted Bot API server) applies to them too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

try:  # an optional extra, [ptb]: `supportbot run` and its Telegram channel (aiogram) do without it
    from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
    from telegram.constants import ParseMode
    from telegram.error import (
        BadRequest,
        ChatMigrated,
        EndPointNotFound,
        Forbidden,
        InvalidToken,
        RetryAfter,
        TelegramError,
    )
    from telegram.ext import (
        Application,
        BaseHandler,
        CallbackQueryHandler,
        ChatMemberHandler,
        ContextTypes,
        MessageHandler,
        filters,
    )
    from telegram.warnings import PTBDeprecationWarning
except ImportError as exc:
    if not (exc.name or "").startswith("telegram"):
        raise
    raise ImportError(
        "bot.adapters.telegram_ptb needs python-telegram-bot: pip install 'supportbot[ptb]'", name=exc.name
    ) from exc

from bot.adapters.telegram_base import ChatUnavailable, Keyboard, TelegramChannelBase
from bot.adapters.webhook import RETRY_DELAYS
from bot.config import Settings, TelegramSettings
from bot.errors import RateLimited, SendError

if TYPE_CHECKING:
    from bot.app import SupportBot

log = logging.getLogger(__name__)
T = TypeVar("T")


def api_base_url(settings: TelegramSettings) -> str:
    """Return `channels.telegram.api_base` as ApplicationBuilder().base_url() wants it (…/bot)."""
    return settings.api_base.rstrip("/") + "/bot"


def api_base_file_url(settings: TelegramSettings) -> str:
    """Return the file download base for ApplicationBuilder().base_file_url() (…/file/bot)."""
    return settings.api_base.rstrip("/") + "/file/bot"


def support_handlers(
    app_settings: Settings, support_bot: SupportBot | None = None
) -> list[BaseHandler[Update, Any, Any]]:
    """Return the handlers that give an Application the support bot's behaviour.

    Without `support_bot`, one is built from `app_settings` and started on the first update (database
    migration and model loading take a few seconds then); use `TelegramSupport` to start it eagerly.
    """
    return TelegramSupport(app_settings, support_bot).handlers()


class PTBTelegramChannel(TelegramChannelBase):
    """Sends through a python-telegram-bot `Bot` (the Application's), so its base_url is honoured."""

    def __init__(self, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        super().__init__(retry_delays)
        self.bot: Bot | None = None

    async def send_text(self, chat_id: str, html_text: str, keyboard: Keyboard | None) -> str:
        markup = None
        if keyboard:
            markup = InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(b.text, callback_data=b.callback_data) for b in row]
                    for row in keyboard
                ]
            )
        bot = self._bot()
        sent = await _call(
            "sendMessage",
            bot.send_message(
                chat_id=_chat(chat_id), text=html_text, parse_mode=ParseMode.HTML, reply_markup=markup
            ),
        )
        return str(sent.message_id)

    async def send_media(self, chat_id: str, method: str, params: dict[str, Any]) -> str:
        bot = self._bot()
        sent = await _call(method, bot.do_api_request(method, {"chat_id": _chat(chat_id), **params}, Message))
        return str(sent.message_id)

    async def send_chat_action(self, chat_id: str, action: str) -> None:
        await _call("sendChatAction", self._bot().send_chat_action(chat_id=_chat(chat_id), action=action))

    async def answer_callback_query(self, query_id: str) -> None:
        await _call("answerCallbackQuery", self._bot().answer_callback_query(query_id))

    async def remove_keyboard(self, chat_id: str, message_id: int) -> None:
        await _call(
            "editMessageReplyMarkup",
            self._bot().edit_message_reply_markup(
                chat_id=_chat(chat_id), message_id=message_id, reply_markup=None
            ),
        )

    def _bot(self) -> Bot:
        if self.bot is None:
            raise SendError(
                "the python-telegram-bot Application has not handed us its Bot yet (no update so far)"
            )
        return self.bot


class TelegramSupport:
    """The support bot mounted in a PTB Application: handlers, plus optional post_init/post_shutdown hooks."""

    def __init__(
        self,
        app_settings: Settings,
        support_bot: SupportBot | None = None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.settings = app_settings
        self.channel = PTBTelegramChannel(retry_delays)
        self.support_bot = support_bot
        self._owns_bot = support_bot is None
        if support_bot is not None:
            support_bot.add_channel(
                self.channel
            )  # replies to Telegram customers go out through the Application
        self._starting: asyncio.Lock | None = None

    def handlers(self) -> list[BaseHandler[Update, Any, Any]]:
        """Return private-chat messages and edits, our buttons, and block/unblock notices."""
        private = filters.ChatType.PRIVATE
        messages = (filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE) & private
        return [
            MessageHandler(messages, self.handle),
            CallbackQueryHandler(self.handle, pattern=TelegramChannelBase.owns_callback),
            ChatMemberHandler(self.handle, ChatMemberHandler.MY_CHAT_MEMBER),
        ]

    async def post_init(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Start the support bot with the Application (ApplicationBuilder().post_init(support.post_init))."""
        self.channel.bot = application.bot
        await self._ensure_started()

    async def post_shutdown(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Stop the support bot we started (ApplicationBuilder().post_shutdown(support.post_shutdown))."""
        if self._owns_bot and self.support_bot is not None:
            await self.support_bot.close()
            self.support_bot = None

    async def handle(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Handle one update like the aiogram channel does: store, answer, acknowledge."""
        if self.channel.bot is None:
            self.channel.bot = context.bot
        raw = update.to_dict()
        try:
            support = await self._ensure_started()
            await self.channel.process_update(support.inbox, raw)
        except Exception:
            # PTB has already confirmed this update to Telegram, so the log is where it survives.
            log.exception(
                "telegram (ptb): update not processed; raw update for replay: %s",
                json.dumps(raw, ensure_ascii=False, default=str),
            )

    async def _ensure_started(self) -> SupportBot:
        if self.support_bot is not None and not self._owns_bot:
            return self.support_bot
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.support_bot is None:
                from bot.app import SupportBot  # the integration wires a whole bot; adapters alone do not

                support = SupportBot(self.settings, channels=[self.channel])
                await support.start(background=True)
                self.support_bot = support
            return self.support_bot


def _chat(chat_id: str) -> int | str:
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


async def _call(method: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except TelegramError as exc:
        raise send_error(exc, method) from exc


def send_error(exc: TelegramError, method: str) -> SendError:
    """Translate a python-telegram-bot error into a SendError the outbox understands."""
    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns about the int form; both forms are handled
            warnings.simplefilter("ignore", PTBDeprecationWarning)
            wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        return RateLimited(f"Telegram {method}: flood control, retry after {seconds:g}s", retry_after=seconds)
    if isinstance(exc, Forbidden):
        return ChatUnavailable(f"Telegram {method}: 403 {exc.message}")
    if isinstance(exc, InvalidToken):  # kept for retry: fixing the token must not lose replies
        return SendError(f"Telegram {method}: {exc.message} (check the Application's token)")
    if isinstance(exc, (BadRequest, ChatMigrated, EndPointNotFound)):  # BadRequest before NetworkError
        return SendError(f"Telegram {method}: {exc.message}", permanent=True)
    return SendError(f"Telegram {method}: {type(exc).__name__}: {exc.message}")  # 5xx, timeouts, network
