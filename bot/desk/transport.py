"""The desk's Bot API calls, through the customer bot's own aiogram client (one token for both).

Each call raises SendError like the channel's (RateLimited with Telegram's retry_after, permanent for a
400); `TopicGone` when Telegram says the topic is not there any more (deleted by hand).
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiogram.enums import ParseMode
from aiogram.methods import (
    CloseForumTopic,
    CreateForumTopic,
    EditMessageText,
    PinChatMessage,
    ReopenForumTopic,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)

from bot.adapters.telegram import TelegramChannel, send_error
from bot.errors import SendError

T = TypeVar("T")
_GONE = ("thread not found", "topic_deleted", "topic not found", "topic_id_invalid")
_MEDIA = {"sendPhoto": (SendPhoto, "photo"), "sendDocument": (SendDocument, "document")}


class TopicGone(SendError):
    """The forum topic was deleted (or never existed): the desk reports it and makes a new one next time."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class DeskApi:
    """createForumTopic, sendMessage into a topic, pin, edit, close and reopen, for one group."""

    def __init__(self, channel: TelegramChannel, chat_id: int) -> None:
        self.bot = channel.bot
        self.chat_id = chat_id

    async def create_topic(self, name: str) -> int:
        topic = await self._call(CreateForumTopic(chat_id=self.chat_id, name=name[:128]))
        return int(topic.message_thread_id)

    async def send_text(self, thread_id: int | None, html_text: str) -> int:
        sent = await self._call(
            SendMessage(
                chat_id=self.chat_id,
                message_thread_id=thread_id,
                text=html_text,
                parse_mode=ParseMode.HTML,
            )
        )
        return int(sent.message_id)

    async def send_media(self, thread_id: int | None, method: str, file_id: str, caption_html: str) -> int:
        kind, field = _MEDIA[method]
        params: dict[str, Any] = {field: file_id}
        if caption_html:
            params.update(caption=caption_html, parse_mode=ParseMode.HTML)
        sent = await self._call(kind(chat_id=self.chat_id, message_thread_id=thread_id, **params))
        return int(sent.message_id)

    async def pin(self, message_id: int) -> None:
        await self._call(
            PinChatMessage(chat_id=self.chat_id, message_id=message_id, disable_notification=True)
        )

    async def edit_text(self, message_id: int, html_text: str) -> None:
        try:
            await self._call(
                EditMessageText(
                    chat_id=self.chat_id, message_id=message_id, text=html_text, parse_mode=ParseMode.HTML
                )
            )
        except SendError as exc:
            if "not modified" not in str(exc):
                raise

    async def close_topic(self, thread_id: int) -> None:
        await self._quiet_topic_call(CloseForumTopic(chat_id=self.chat_id, message_thread_id=thread_id))

    async def reopen_topic(self, thread_id: int) -> None:
        await self._quiet_topic_call(ReopenForumTopic(chat_id=self.chat_id, message_thread_id=thread_id))

    async def _quiet_topic_call(self, method: TelegramMethod[bool]) -> None:
        try:
            await self._call(method)
        except SendError as exc:  # already closed / open: what we wanted
            if "TOPIC_NOT_MODIFIED" not in str(exc).upper():
                raise

    async def _call(self, method: TelegramMethod[T]) -> T:
        try:
            return await self.bot(method)
        except Exception as exc:
            error = send_error(exc, method.__api_method__)
            if error.permanent and any(mark in str(error).lower() for mark in _GONE):
                raise TopicGone(str(error)) from exc
            raise error from exc
