"""The Telegram channel on aiogram 3: long polling or a webhook in, Bot API calls out."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    GetMe,
    SendAnimation,
    SendAudio,
    SendChatAction,
    SendContact,
    SendDocument,
    SendLocation,
    SendMessage,
    SendPhoto,
    SendSticker,
    SendVideo,
    SendVoice,
    SetWebhook,
    TelegramMethod,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.token import TokenValidationError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from bot.adapters.base import Inbox
from bot.adapters.registry import register_channel
from bot.adapters.telegram_base import ChatUnavailable, Keyboard, TelegramChannelBase
from bot.adapters.telegram_payloads import ALLOWED_UPDATES, CHANNEL, chat_key
from bot.adapters.webhook import RETRY_DELAYS, Refused, json_object, same_secret
from bot.config import Settings, TelegramSettings
from bot.errors import ConfigError, RateLimited, SendError

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token
_MAX_FAILED_ROUNDS = 5  # polling rounds an update may fail before it is logged and skipped
_MEDIA_CLASSES: dict[str, Any] = {  # method name -> aiogram method class
    "sendPhoto": SendPhoto,
    "sendDocument": SendDocument,
    "sendVideo": SendVideo,
    "sendVoice": SendVoice,
    "sendAudio": SendAudio,
    "sendAnimation": SendAnimation,
    "sendSticker": SendSticker,
    "sendLocation": SendLocation,
    "sendContact": SendContact,
}
T = TypeVar("T")


class WebhookAnswer(BaseModel):
    """What POST /webhooks/telegram answers: {"ok": true}, or {"ok": false, "error"}."""

    ok: bool
    error: str | None = None


def _answer(description: str) -> dict[str, Any]:
    return {"model": WebhookAnswer, "description": description}


_WEBHOOK_DOC: dict[str, Any] = {
    "summary": "Telegram's updates (webhook mode); Telegram retries anything but a 2xx",
    "tags": ["webhooks"],
    "responses": {
        200: _answer('Taken: {"ok": true}'),
        400: _answer("The body is not a JSON object"),
        401: _answer("Wrong or missing secret token"),
        500: _answer("Not processed this time: Telegram delivers it again"),
    },
    "openapi_extra": {
        "parameters": [
            {
                "name": SECRET_HEADER,
                "in": "header",
                "required": True,
                "description": "channels.telegram.webhook_secret, as given to setWebhook",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "An Update"}}},
        },
    },
}


class _RawGetUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates returning plain dicts: our tolerant parser reads them, one odd update cannot stall polling."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


@register_channel(CHANNEL)
class TelegramChannel(TelegramChannelBase):
    """A support bot of its own: aiogram's Bot client, polling or webhook, per channels.telegram."""

    def __init__(
        self,
        settings: TelegramSettings,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        super().__init__(retry_delays)
        if not settings.token:
            raise ConfigError("channels.telegram.token is not set (or set TELEGRAM_BOT_TOKEN)")
        if settings.mode == "webhook":
            if not settings.webhook_url or not settings.webhook_url.startswith("https://"):
                raise ConfigError(
                    "channels.telegram.mode is webhook, so channels.telegram.webhook_url must be the public "
                    f"https:// URL of {WEBHOOK_PATH} (got {settings.webhook_url!r})"
                )
            if not settings.webhook_secret or not _SECRET_FORMAT.match(settings.webhook_secret):
                raise ConfigError(
                    "channels.telegram.webhook_secret (or TELEGRAM_WEBHOOK_SECRET) must be set in webhook mode: "
                    "1-256 characters of A-Z, a-z, 0-9, _ and -"
                )
        self.settings = settings
        self.api = TelegramAPIServer.from_base(settings.api_base)
        try:
            self.bot = Bot(
                settings.token,
                session=AiohttpSession(api=self.api, timeout=settings.request_timeout_seconds),
                default=DefaultBotProperties(parse_mode=ParseMode.HTML),
            )
        except TokenValidationError as exc:
            raise ConfigError(
                f"channels.telegram.token does not look like a bot token (123456:ABC-...): {exc}"
            ) from exc
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def configured(cls, settings: Settings) -> TelegramChannel | None:
        """Return the channel when channels.telegram.token is set."""
        return cls(settings.channels.telegram) if settings.channels.telegram.token else None

    # --- receiving -------------------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Start long polling, or register the webhook with Telegram (retried in the background)."""
        if self.settings.mode == "webhook":
            self._task = asyncio.create_task(self._register_webhook(), name="telegram-set-webhook")
        else:
            self._task = asyncio.create_task(self._poll(inbox), name="telegram-polling")

    async def stop(self) -> None:
        """Stop polling (updates not yet handled stay at Telegram) and close the HTTP session."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.bot.session.close()

    def router(self, inbox: Inbox) -> APIRouter | None:
        """Return POST /webhooks/telegram in webhook mode (nothing in polling mode)."""
        if self.settings.mode != "webhook":
            return None
        router = APIRouter()

        @router.post(WEBHOOK_PATH, **_WEBHOOK_DOC)
        async def webhook(request: Request) -> Response:
            return await self.take_update(inbox, request.headers.get(SECRET_HEADER), await request.body())

        return router

    async def take_update(self, inbox: Inbox, secret: str | None, body: bytes) -> JSONResponse:
        """Check the secret token, then handle the update before answering (Telegram redelivers a non-2xx)."""
        if secret is None or not same_secret(secret, self.settings.webhook_secret or ""):
            log.warning(
                "telegram: webhook %s refused (check channels.telegram.webhook_secret)",
                "without a secret token" if secret is None else "with a wrong secret token",
            )
            return JSONResponse({"ok": False, "error": "wrong or missing secret token"}, status_code=401)
        try:
            update = json_object(body, CHANNEL, "an Update object")
        except Refused as refused:
            return JSONResponse({"ok": False, "error": refused.error}, status_code=refused.status)
        try:
            await self.process_update(inbox, update)
        except Exception:
            # Not a 2xx, so Telegram delivers the update again later; the log keeps it meanwhile.
            log.exception(
                "telegram: update not processed; Telegram will redeliver it: %r",
                body.decode("utf-8", "replace"),
            )
            return JSONResponse({"ok": False, "error": "not processed, retry later"}, status_code=500)
        return JSONResponse({"ok": True})

    async def _register_webhook(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await self._call(
                    SetWebhook(
                        url=self.settings.webhook_url or "",
                        secret_token=self.settings.webhook_secret,
                        allowed_updates=list(ALLOWED_UPDATES),
                        drop_pending_updates=False,  # messages sent while we were away still count
                    )
                )
                log.info("telegram: webhook set to %s", self.settings.webhook_url)
                return
            except SendError as exc:
                log.error(
                    "telegram: setWebhook to %s failed (%s); retrying in %.0fs",
                    self.settings.webhook_url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])

    async def _poll(self, inbox: Inbox) -> None:
        """Fetch updates and confirm each batch only after it has been handled (stored and answered)."""
        offset: int | None = None
        delay = self._backoff[0]
        ready = False
        failed_rounds: dict[int, int] = {}
        while True:
            try:
                if not ready:  # getUpdates refuses to work while a webhook is set
                    me = await self._call(GetMe())
                    await self._call(DeleteWebhook(drop_pending_updates=False))
                    log.info("telegram: polling as @%s via %s", me.username, self.settings.api_base)
                    ready = True
                timeout = self.settings.polling_timeout_seconds
                updates = await self._call(
                    _RawGetUpdates(offset=offset, timeout=timeout, allowed_updates=list(ALLOWED_UPDATES)),
                    request_timeout=int(timeout + self.settings.request_timeout_seconds),
                )
            except SendError as exc:
                if isinstance(exc.__cause__, TelegramConflictError):
                    ready = False  # another instance polls, or someone set a webhook: say so, and retry
                log.error("telegram: getUpdates failed (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(exc.retry_after or delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            updates = [u for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
            if not updates:
                continue
            failed = await self._handle_batch(inbox, updates)
            for update in updates:
                if update["update_id"] in failed:
                    failed_rounds[update["update_id"]] = failed_rounds.get(update["update_id"], 0) + 1
            stuck = [u for u in updates if failed_rounds.get(u["update_id"], 0) >= _MAX_FAILED_ROUNDS]
            for update in stuck:
                log.error(
                    "telegram: update %r failed %d times and is skipped; raw update for replay: %s",
                    update["update_id"],
                    _MAX_FAILED_ROUNDS,
                    json.dumps(update, ensure_ascii=False),
                )
                failed.discard(update["update_id"])
                failed_rounds.pop(update["update_id"], None)
            if (
                failed
            ):  # confirm nothing from the first failure on; those come again (done ones are deduplicated)
                offset = min(failed)
                log.error("telegram: update %r not processed; fetching it again in %.0fs", offset, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            else:
                offset = max(u["update_id"] for u in updates) + 1
                failed_rounds.clear()

    async def _handle_batch(self, inbox: Inbox, updates: list[dict[str, Any]]) -> set[int]:
        """Handle updates of different chats in parallel, one chat's in order; return the failed ids."""
        by_chat: dict[str, list[dict[str, Any]]] = {}
        for update in sorted(updates, key=lambda u: u["update_id"]):
            by_chat.setdefault(chat_key(update), []).append(update)
        failed: set[int] = set()

        async def handle_chat(chat_updates: list[dict[str, Any]]) -> None:
            for update in chat_updates:
                try:
                    await self.process_update(inbox, update)
                except Exception:
                    log.exception("telegram: update %r not processed", update["update_id"])
                    failed.update(
                        u["update_id"] for u in chat_updates if u["update_id"] >= update["update_id"]
                    )
                    return

        await asyncio.gather(*(handle_chat(chat) for chat in by_chat.values()))
        return failed

    # --- transport -------------------------------------------------------------------------------

    async def send_text(self, chat_id: str, html_text: str, keyboard: Keyboard | None) -> str:
        markup = _markup(keyboard) if keyboard else None
        sent = await self._call(
            SendMessage(chat_id=chat_id, text=html_text, parse_mode=ParseMode.HTML, reply_markup=markup)
        )
        return str(sent.message_id)

    async def send_media(self, chat_id: str, method: str, params: dict[str, Any]) -> str:
        sent = await self._call(_MEDIA_CLASSES[method](chat_id=chat_id, **params))
        return str(sent.message_id)

    async def send_chat_action(self, chat_id: str, action: str) -> None:
        await self._call(SendChatAction(chat_id=chat_id, action=action))

    async def answer_callback_query(self, query_id: str) -> None:
        await self._call(AnswerCallbackQuery(callback_query_id=query_id))

    async def remove_keyboard(self, chat_id: str, message_id: int) -> None:
        await self._call(EditMessageReplyMarkup(chat_id=chat_id, message_id=message_id, reply_markup=None))

    async def _call(self, method: TelegramMethod[T], request_timeout: int | None = None) -> T:
        try:
            return await self.bot(method, request_timeout=request_timeout)
        except Exception as exc:
            raise send_error(exc, method.__api_method__) from exc


def _markup(keyboard: Keyboard) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.text, callback_data=b.callback_data) for b in row]
            for row in keyboard
        ]
    )


def send_error(exc: Exception, method: str) -> SendError:
    """Translate an aiogram error into a SendError the outbox understands: when to retry, or never."""
    if isinstance(exc, TelegramRetryAfter):
        return RateLimited(
            f"Telegram {method}: flood control, retry after {exc.retry_after}s",
            retry_after=float(exc.retry_after),
        )
    if isinstance(exc, TelegramForbiddenError):
        return ChatUnavailable(f"Telegram {method}: 403 {exc.message}")
    if isinstance(exc, TelegramUnauthorizedError):  # kept for retry: fixing the token must not lose replies
        return SendError(f"Telegram {method}: 401 {exc.message} (check channels.telegram.token)")
    if isinstance(exc, (TelegramBadRequest, TelegramNotFound, TelegramEntityTooLarge, TelegramMigrateToChat)):
        return SendError(f"Telegram {method}: {exc.message}", permanent=True)
    if isinstance(exc, TelegramAPIError):  # 5xx, network errors, timeouts, 409
        return SendError(f"Telegram {method}: {type(exc).__name__}: {exc.message}")
    if isinstance(exc, ClientDecodeError):  # a proxy's HTML error page instead of JSON
        return SendError(f"Telegram {method}: unreadable response: {exc}")
    return SendError(f"Telegram {method}: {type(exc).__name__}: {exc}")
