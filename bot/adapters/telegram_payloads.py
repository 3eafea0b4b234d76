"""Parse Telegram Bot API updates (plain JSON) into channel-neutral messages; tolerant of old shapes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.adapters.payload_fields import as_dict as _obj
from bot.adapters.payload_fields import dict_items as _dicts
from bot.adapters.payload_fields import keys_summary as _summary
from bot.adapters.payload_fields import text_or_none as _str
from bot.messages import START_PAYLOAD, Attachment, IncomingMessage

log = logging.getLogger(__name__)

CHANNEL = "telegram"
# The update types the support bot asks Telegram for (getUpdates and setWebhook `allowed_updates`).
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
START_COMMANDS = frozenset({"/start", "/help"})  # both open the greeting and the menu of topics
_MEDIA_KINDS = ("document", "audio", "voice", "video")
# Service messages: something happened in the chat, nobody wrote anything, so nothing to answer.
_SERVICE_KEYS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "channel_chat_created",
        "message_auto_delete_timer_changed",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "pinned_message",
        "connected_website",
        "write_access_allowed",
        "proximity_alert_triggered",
        "boost_added",
        "chat_background_set",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "general_forum_topic_hidden",
        "general_forum_topic_unhidden",
        "video_chat_scheduled",
        "video_chat_started",
        "video_chat_ended",
        "video_chat_participants_invited",
    }
)
# Fields every message carries besides its content; what is left over is the content type.
_ENVELOPE_KEYS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "business_connection_id",
        "date",
        "edit_date",
        "chat",
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
        "forward_origin",
        "is_topic_message",
        "is_automatic_forward",
        "is_from_offline",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "via_bot",
        "has_protected_content",
        "media_group_id",
        "author_signature",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_markup",
        "has_media_spoiler",
        "show_caption_above_media",
        "effect_id",
        "text",
        "caption",
        "type",
    }
)


@dataclass(frozen=True)
class CustomerMessage:
    """Something the customer wrote or pressed; a press carries its callback query id to answer."""

    message: IncomingMessage
    callback_query_id: str | None = None
    pressed_message_id: int | None = None  # the message whose inline button was pressed


@dataclass(frozen=True)
class MemberChange:
    """The customer blocked (status kicked) or unblocked the bot in their private chat."""

    customer_id: str
    blocked: bool


@dataclass(frozen=True)
class Ignored:
    """An update that needs no reply: a group message, an inline query, a service message..."""

    kind: str
    detail: str = ""
    callback_query_id: str | None = None  # a press we do not handle is still answered (stops the spinner)


TelegramEvent = CustomerMessage | MemberChange | Ignored


def parse_update(update: Any, now: datetime | None = None) -> TelegramEvent:
    """Return what one Update means for the support bot; never raise on odd or old shapes."""
    now = now or datetime.now(UTC)
    if not isinstance(update, dict):
        return Ignored("malformed", f"an update must be a JSON object, got {type(update).__name__}")
    try:
        return _parse(update, now)
    except Exception as exc:  # a shape we did not foresee must not stop the channel
        log.warning("telegram: could not parse update %r: %r", update.get("update_id"), exc)
        return Ignored("unparseable", repr(exc))


def update_kind(update: dict[str, Any]) -> str:
    """Return the update's type: message, callback_query... (the key besides update_id)."""
    return next((key for key in update if key != "update_id" and not key.startswith("_")), "empty")


def chat_key(update: Any) -> str:
    """Return the chat an update belongs to, so updates of one chat are handled in order."""
    if not isinstance(update, dict):
        return ""
    body = _obj(update.get(update_kind(update)))
    chat = _obj(body.get("chat")) or _obj(_obj(body.get("message")).get("chat"))
    return str(chat.get("id") or _obj(body.get("from")).get("id") or "")


def group_chat_id(update: Any) -> int | None:
    """The group or supergroup an update comes from (a message, an edit, the bot's membership), else None."""
    if not isinstance(update, dict):
        return None
    body = _obj(update.get(update_kind(update)))
    chat = _obj(body.get("chat"))
    if chat.get("type") in ("group", "supergroup") and isinstance(chat.get("id"), int):
        return int(chat["id"])
    return None


def _parse(update: dict[str, Any], now: datetime) -> TelegramEvent:
    kind = update_kind(update)
    body = update.get(kind)
    if not isinstance(body, dict):
        return Ignored("malformed", f"{kind} is not an object")
    if kind in ("message", "edited_message"):
        return _parse_message(body, edited=kind == "edited_message", now=now)
    if kind == "callback_query":
        return _parse_callback(body, now)
    if kind == "my_chat_member":
        return _parse_member(body)
    return Ignored(kind, _summary(body))  # inline queries, channel posts, payments...


def _parse_message(message: dict[str, Any], edited: bool, now: datetime) -> TelegramEvent:
    chat, sender = _obj(message.get("chat")), _obj(message.get("from"))
    message_id = _str(message.get("message_id"))
    if not _is_private(chat, sender):
        return Ignored("group_chat", f"{chat.get('type')} {chat.get('id')}: the bot answers in private chats")
    if not message_id or chat.get("id") is None:
        return Ignored("malformed", "a message without message_id or chat.id")
    service = next((key for key in _SERVICE_KEYS if message.get(key)), None)
    if service:
        return Ignored(f"service:{service}", str(chat.get("id")))
    text = str(message.get("text") or message.get("caption") or "")
    payload = None
    command = text.split(maxsplit=1)[0].split("@", 1)[0].lower() if text.startswith("/") else ""
    if command in START_COMMANDS and not edited:
        payload = START_PAYLOAD
    attachments = _attachments(message)
    contact = _obj(message.get("contact"))
    phone = None
    # Keep the customer's own number (shared with the "share contact" button) for order look-ups.
    if contact.get("phone_number") and contact.get("user_id") in (None, sender.get("id")):
        phone = str(contact["phone_number"])
    stamp = message.get("edit_date") if edited else message.get("date")
    incoming = IncomingMessage(
        channel=CHANNEL,
        chat_id=str(chat["id"]),
        customer_id=str(sender.get("id") or chat["id"]),
        text=text,
        display_name=_name(sender) or _name(chat),
        username=_str(sender.get("username")) or _str(chat.get("username")),
        phone=phone,
        language_hint=_str(sender.get("language_code")),
        attachments=attachments,
        platform_message_id=message_id,
        timestamp=_timestamp(stamp, now),
        payload=payload,
        edited=edited,
    )
    return CustomerMessage(incoming)


def _attachments(message: dict[str, Any]) -> tuple[Attachment, ...]:
    caption = _str(message.get("caption"))
    found: list[Attachment] = []
    photos = _dicts(message.get("photo"))
    if photos:  # several sizes of one picture: keep the largest
        best = max(
            photos, key=lambda p: (p.get("file_size") or 0, (p.get("width") or 0) * (p.get("height") or 0))
        )
        found.append(Attachment("photo", _str(best.get("file_id")), "image/jpeg", caption, _file_data(best)))
    if isinstance(message.get("animation"), dict):  # a GIF also arrives as a document: read it once
        found.append(_file("animation", message["animation"], caption))
    else:
        found.extend(
            _file(kind, message[kind], caption)
            for kind in _MEDIA_KINDS
            if isinstance(message.get(kind), dict)
        )
    if isinstance(message.get("video_note"), dict):
        found.append(_file("video", message["video_note"], caption, round_video=True))
    location = _obj(message.get("location"))
    venue = _obj(message.get("venue"))
    if location or venue:
        data = {**(location or _obj(venue.get("location")))}
        data.update({k: venue[k] for k in ("title", "address") if venue.get(k)})
        found.append(Attachment("location", data=data))
    contact = _obj(message.get("contact"))
    if contact:
        found.append(Attachment("contact", data=dict(contact)))
    if isinstance(message.get("sticker"), dict):
        sticker = message["sticker"]
        data = {k: sticker[k] for k in ("emoji", "set_name", "is_animated", "is_video") if k in sticker}
        found.append(Attachment("sticker", _str(sticker.get("file_id")), data=data))
    if not found and not message.get("text"):
        # A dice, a game, a poll, an invoice, a story...: say politely that we can only read text.
        others = sorted(
            k for k, v in message.items() if k not in _ENVELOPE_KEYS and v not in (None, False, "")
        )
        if others:
            found.append(Attachment("unsupported", data={"type": others[0]}))
    return tuple(found)


def _file(kind: str, body: dict[str, Any], caption: str | None, **extra: Any) -> Attachment:
    return Attachment(
        kind, _str(body.get("file_id")), _str(body.get("mime_type")), caption, {**_file_data(body), **extra}
    )


def _file_data(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("file_unique_id", "file_name", "file_size", "duration", "width", "height", "title", "performer")
    return {k: body[k] for k in keys if body.get(k) is not None}


def _parse_callback(query: dict[str, Any], now: datetime) -> TelegramEvent:
    query_id = _str(query.get("id"))
    sender = _obj(query.get("from"))
    message = _obj(query.get("message"))
    chat = _obj(message.get("chat"))
    data = _str(query.get("data"))
    if not query_id:
        return Ignored("malformed", "a callback query without an id")
    if data is None:
        return Ignored("callback_game", f"game {query.get('game_short_name')!r}", query_id)
    if query.get("inline_message_id") or (chat and not _is_private(chat, sender)):
        return Ignored("callback_elsewhere", "a button under an inline or group message", query_id)
    chat_id = chat.get("id") or sender.get("id")
    if chat_id is None:
        return Ignored("malformed", "a callback query without a chat or a sender", query_id)
    incoming = IncomingMessage(
        channel=CHANNEL,
        chat_id=str(chat_id),
        customer_id=str(sender.get("id") or chat_id),
        display_name=_name(sender),
        username=_str(sender.get("username")),
        language_hint=_str(sender.get("language_code")),
        platform_message_id=f"callback:{query_id}",  # a redelivered press is answered once
        timestamp=now,
        payload=data,
    )
    pressed = message.get("message_id")
    return CustomerMessage(incoming, query_id, pressed if isinstance(pressed, int) else None)


def _parse_member(change: dict[str, Any]) -> TelegramEvent:
    chat, sender = _obj(change.get("chat")), _obj(change.get("from"))
    status = _obj(change.get("new_chat_member")).get("status")
    old = _obj(change.get("old_chat_member")).get("status")
    if not _is_private(chat, sender):
        return Ignored("my_chat_member", f"{old} -> {status} in {chat.get('type')} {chat.get('id')}")
    customer = str(sender.get("id") or chat.get("id"))
    if status == "kicked":
        return MemberChange(customer, blocked=True)
    if status == "member":
        return MemberChange(customer, blocked=False)
    return Ignored("my_chat_member", f"{old} -> {status}")


def _is_private(chat: dict[str, Any], sender: dict[str, Any]) -> bool:
    kind = chat.get("type")
    if kind is not None:
        return str(kind) == "private"
    # Old updates (2015) have no chat.type: a private chat's id is the user's id, groups are negative.
    chat_id = chat.get("id")
    return chat_id is not None and (chat_id == sender.get("id") or (isinstance(chat_id, int) and chat_id > 0))


def _name(person: dict[str, Any]) -> str | None:
    name = " ".join(str(person[k]) for k in ("first_name", "last_name") if person.get(k))
    return name or _str(person.get("title"))


def _timestamp(raw: Any, now: datetime) -> datetime:
    try:
        moment = datetime.fromtimestamp(int(raw), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    return min(moment, now)
