"""What both Telegram integrations share: update handling, HTML rendering, splitting and keyboards.

`TelegramChannelBase` knows the Bot API's rules; a subclass supplies the HTTP client (aiogram in
`telegram.py`, python-telegram-bot in `telegram_ptb.py`) by implementing five small transport methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from bot.adapters.base import Channel, DeliveryTarget, Inbox
from bot.adapters.reply_parts import PartTracker
from bot.adapters.telegram_payloads import (
    CHANNEL,
    CustomerMessage,
    Ignored,
    MemberChange,
    group_chat_id,
    parse_update,
)
from bot.adapters.text_split import split_text
from bot.adapters.webhook import RETRY_DELAYS, with_retries
from bot.errors import RecipientUnavailable, SendError
from bot.messages import Attachment, Button, OutgoingReply

log = logging.getLogger("bot.adapters.telegram")
T = TypeVar("T")

TEXT_LIMIT = 4096  # characters (UTF-16 code units) of one message after entity parsing
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes of callback_data
CALLBACK_PREFIX = "sb:"  # marks our buttons, so a team's own buttons in the same bot are left alone
_HASHED_PREFIX = "sb#"  # a payload too long for 64 bytes travels as a digest
_TYPING_EVERY = 4.5  # seconds; Telegram shows "typing…" for 5 s or until the next message
_SHORT_TITLE = 12  # buttons with titles this short share one row (👍 👎)
_FEEDBACK_PREFIX = "fb:"  # after a vote the 👍/👎 keyboard is removed, so nobody votes twice
_MEDIA_METHODS = {
    "photo": "sendPhoto",
    "document": "sendDocument",
    "video": "sendVideo",
    "voice": "sendVoice",
    "audio": "sendAudio",
    "animation": "sendAnimation",
    "sticker": "sendSticker",
}


@dataclass(frozen=True)
class InlineButton:
    text: str
    callback_data: str


Keyboard = list[list[InlineButton]]


class ChatUnavailable(RecipientUnavailable):
    """Telegram refused with 403: the customer blocked the bot or deleted their account."""


def utf16_len(text: str) -> int:
    """Return the length Telegram counts: UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


class TelegramChannelBase(Channel):
    """Handles updates through the Inbox and sends replies; subclasses only move bytes."""

    name = CHANNEL

    def __init__(self, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self._retry_delays = tuple(retry_delays)  # between attempts to hand an update to the engine
        self._parts = PartTracker()  # a retried reply resumes after the parts already delivered
        self._long_payloads: OrderedDict[str, str] = OrderedDict()  # digest -> payload
        # Updates from group chats go here when set (the agent desk, bot/desk/); it returns whether it
        # took the update. The channel itself answers only private chats.
        self.group_listener: Callable[[dict[str, Any]], Awaitable[bool]] | None = None

    # --- transport: one Bot API call each; raise SendError (RateLimited, ChatUnavailable for 403) ---

    @abstractmethod
    async def send_text(self, chat_id: str, html_text: str, keyboard: Keyboard | None) -> str:
        """Call sendMessage with parse_mode HTML; return the message id."""

    @abstractmethod
    async def send_media(self, chat_id: str, method: str, params: dict[str, Any]) -> str:
        """Call sendPhoto, sendLocation... with plain parameters; return the message id."""

    @abstractmethod
    async def send_chat_action(self, chat_id: str, action: str) -> None:
        """Call sendChatAction."""

    @abstractmethod
    async def answer_callback_query(self, query_id: str) -> None:
        """Call answerCallbackQuery (stops the spinner on the pressed button)."""

    @abstractmethod
    async def remove_keyboard(self, chat_id: str, message_id: int) -> None:
        """Call editMessageReplyMarkup without a markup."""

    # --- receiving -------------------------------------------------------------------------------

    async def process_update(self, inbox: Inbox, update: dict[str, Any]) -> None:
        """Handle one Update (a plain dict); retry the engine a few times, then raise."""
        if self.group_listener is not None and group_chat_id(update) is not None:
            if await self.group_listener(update):
                return
        event = parse_update(update)
        if isinstance(event, Ignored):
            log.info(
                "telegram: update %r ignored (%s): %r", update.get("update_id"), event.kind, event.detail
            )
            if event.callback_query_id:
                await self._quietly(
                    self.answer_callback_query(event.callback_query_id), "answerCallbackQuery"
                )
            return
        if isinstance(event, MemberChange):
            if event.blocked:
                log.info("telegram: customer %r blocked the bot", event.customer_id)
                await self._with_retries(lambda: inbox.customer_blocked(CHANNEL, event.customer_id), update)
            else:  # their next message clears the flag; nothing to send now
                log.info("telegram: customer %r unblocked the bot", event.customer_id)
            return
        await self._handle_message(inbox, event, update)

    async def _handle_message(self, inbox: Inbox, event: CustomerMessage, update: dict[str, Any]) -> None:
        message = event.message
        if event.callback_query_id:
            # Answer first: the customer's button stops spinning while we think.
            await self._quietly(self.answer_callback_query(event.callback_query_id), "answerCallbackQuery")
            message = replace(message, payload=self.payload_of(message.payload or ""))
        typing = not message.edited and not event.callback_query_id
        async with self._typing(message.chat_id, enabled=typing):
            result = await self._with_retries(lambda: inbox.receive(message), update)
        if (
            event.pressed_message_id is not None
            and (message.payload or "").startswith(_FEEDBACK_PREFIX)
            and not result.duplicate
        ):
            await self._quietly(
                self.remove_keyboard(message.chat_id, event.pressed_message_id), "editMessageReplyMarkup"
            )

    async def _with_retries(self, work: Callable[[], Awaitable[T]], update: dict[str, Any]) -> T:
        return await with_retries(work, self._retry_delays, f"telegram: update {update.get('update_id')!r}")

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: str, enabled: bool) -> AsyncIterator[None]:
        if not enabled:
            yield
            return

        async def keep_typing() -> None:
            while True:
                await self._quietly(self.send_chat_action(chat_id, "typing"), "sendChatAction")
                await asyncio.sleep(_TYPING_EVERY)

        task = asyncio.create_task(keep_typing(), name=f"telegram-typing-{chat_id}")
        await asyncio.sleep(0)  # let "typing…" leave before the engine starts working
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _quietly(self, call: Awaitable[Any], what: str) -> None:
        # Courtesy calls (typing, spinner, keyboard clean-up) must never cost the customer's message.
        try:
            await call
        except SendError as exc:
            log.warning("telegram: %s failed: %r", what, exc)

    # --- sending ---------------------------------------------------------------------------------

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        """Send a reply as one or more messages; return the last one's id. Raise SendError on failure."""
        parts = self.render(reply)

        async def send_part(part: tuple[str, dict[str, Any]]) -> str | None:
            method, params = part
            if method == "sendMessage":
                return await self.send_text(target.chat_id, params["text"], params.get("keyboard"))
            return await self.send_media(target.chat_id, method, params)

        return await self._parts.send(target.message_id, parts, send_part)

    def render(self, reply: OutgoingReply) -> list[tuple[str, dict[str, Any]]]:
        """Return the Bot API calls for a reply: escaped HTML parts, the keyboard on the last, then files."""
        chunks = split_text(reply.text, TEXT_LIMIT, measure=utf16_len)
        keyboard = self.keyboard(reply.buttons) if reply.buttons else None
        if keyboard and not chunks:
            chunks = ["👇"]  # Telegram needs some text to hang buttons on
        calls: list[tuple[str, dict[str, Any]]] = []
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) - 1
            calls.append(
                (
                    "sendMessage",
                    {"text": html.escape(chunk, quote=False), "keyboard": keyboard if last else None},
                )
            )
        calls.extend(_attachment_call(attachment) for attachment in reply.attachments)
        if not calls:
            raise SendError("empty reply: no text, buttons or attachments", permanent=True)
        return calls

    def keyboard(self, buttons: Sequence[Button]) -> Keyboard:
        """Return an inline keyboard: short titles side by side, others one per row."""
        keys = [InlineButton(b.title[:64] or "…", self.callback_data(b.payload)) for b in buttons]
        if len(keys) <= 3 and all(len(b.title) <= _SHORT_TITLE for b in buttons):
            return [keys]
        return [[key] for key in keys]

    def callback_data(self, payload: str) -> str:
        """Return the button's callback_data: the payload with our prefix, or a digest if over 64 bytes."""
        data = CALLBACK_PREFIX + payload
        if len(data.encode()) <= CALLBACK_DATA_LIMIT:
            return data
        digest = _HASHED_PREFIX + hashlib.sha256(payload.encode()).hexdigest()[:40]
        self._long_payloads[digest] = payload
        self._long_payloads.move_to_end(digest)
        while len(self._long_payloads) > 10_000:
            self._long_payloads.popitem(last=False)
        return digest

    def payload_of(self, data: str) -> str:
        """Return the payload a pressed button stands for (the inverse of `callback_data`)."""
        if data.startswith(CALLBACK_PREFIX):
            return data[len(CALLBACK_PREFIX) :]
        if data.startswith(_HASHED_PREFIX):
            payload = self._long_payloads.get(data)
            if payload is None:  # sent before a restart: the engine reads it as an unknown button
                log.warning("telegram: button %r is from before a restart; its long payload is gone", data)
                return data
            return payload
        return data

    @staticmethod
    def owns_callback(data: object) -> bool:
        """Return whether callback_data is one of our buttons (for a team's bot with its own buttons)."""
        return isinstance(data, str) and data.startswith((CALLBACK_PREFIX, _HASHED_PREFIX))


def _attachment_call(attachment: Attachment) -> tuple[str, dict[str, Any]]:
    data = attachment.data
    if attachment.kind == "location":
        return "sendLocation", {k: data[k] for k in ("latitude", "longitude") if k in data}
    if attachment.kind == "contact":
        fields = ("phone_number", "first_name", "last_name")
        return "sendContact", {k: data[k] for k in fields if data.get(k)}
    method = _MEDIA_METHODS.get(attachment.kind)
    source = attachment.file_id or data.get("url") or data.get("link")
    if method is None or not source:
        raise SendError(
            f"cannot send a {attachment.kind} attachment without a file id or URL", permanent=True
        )
    params: dict[str, Any] = {attachment.kind: source}
    if attachment.caption and attachment.kind != "sticker":
        params["caption"] = html.escape(attachment.caption[:CAPTION_LIMIT], quote=False)
        params["parse_mode"] = "HTML"
    return method, params
