"""Parse WhatsApp Cloud API webhook bodies into channel-neutral messages and delivery receipts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.adapters.payload_fields import as_dict as _obj
from bot.adapters.payload_fields import dict_items as _dicts
from bot.adapters.payload_fields import keys_summary as _summary
from bot.adapters.payload_fields import text_or_none as _str
from bot.messages import Attachment, IncomingMessage

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
_MEDIA_KINDS = {"image": "photo", "video": "video", "document": "document", "sticker": "sticker"}


@dataclass(frozen=True)
class StatusUpdate:
    """A receipt for one of our outgoing messages: sent, delivered, read, played or failed."""

    wamid: str
    status: str
    recipient_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Ignored:
    """Something the webhook told us that needs no reply (a reaction, a deletion, a system notice...)."""

    kind: str
    detail: str = ""
    wamid: str | None = None


WebhookItem = IncomingMessage | StatusUpdate | Ignored


def parse_webhook(
    payload: dict[str, Any], phone_number_id: str | None = None, now: datetime | None = None
) -> list[WebhookItem]:
    """Return every message, receipt and ignored item in one webhook body; never raise on odd shapes.

    With `phone_number_id`, changes addressed to another business number are ignored (one Meta app can
    serve several numbers, and a reply must come from the number the customer wrote to).
    """
    now = now or datetime.now(UTC)
    if payload.get("object") != "whatsapp_business_account":
        return [Ignored("unknown_object", f"object={payload.get('object')!r}")]
    items: list[WebhookItem] = []
    for change in _changes(payload):
        field = change.get("field")
        value = change.get("value")
        if not isinstance(value, dict):
            items.append(Ignored("malformed_change", f"field={field!r} without a value object"))
            continue
        if field != "messages":  # smb_message_echoes, account updates, template reviews...
            items.append(Ignored(f"field:{field}", _summary(value)))
            continue
        metadata = _obj(value.get("metadata"))
        to_number = str(metadata.get("phone_number_id") or "")
        if phone_number_id and to_number and to_number != phone_number_id:
            items.append(
                Ignored("other_phone_number", f"phone_number_id={to_number}, we serve {phone_number_id}")
            )
            continue
        items.extend(_parse_value(value, now))
    return items


def _changes(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    entries = payload.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict):
                yield change


def _parse_value(value: dict[str, Any], now: datetime) -> list[WebhookItem]:
    items: list[WebhookItem] = []
    profiles = _profiles(value.get("contacts"))
    for raw in _dicts(value.get("messages")):
        try:
            items.append(_parse_message(raw, profiles, now))
        except Exception as exc:  # a shape we did not foresee must not cost the other messages
            log.warning("whatsapp: could not parse message %r: %r", raw, exc)
            items.append(Ignored("unparseable", repr(exc), _str(raw.get("id"))))
    for raw in _dicts(value.get("statuses")):
        wamid, status = _str(raw.get("id")), _str(raw.get("status"))
        if wamid and status:
            items.append(
                StatusUpdate(wamid, status, _str(raw.get("recipient_id")), _errors(raw.get("errors")))
            )
        else:
            items.append(Ignored("malformed_status", repr(raw)[:500]))
    errors = _errors(value.get("errors"))
    if errors:  # Meta reports webhook-level problems here (e.g. an unsupported payload)
        items.append(Ignored("webhook_error", errors))
    return items


def _parse_message(raw: dict[str, Any], profiles: dict[str, dict[str, Any]], now: datetime) -> WebhookItem:
    wamid = _str(raw.get("id"))
    sender = _str(raw.get("from")) or _str(raw.get("from_user_id"))
    kind = _str(raw.get("type")) or "unknown"
    if not wamid or not sender:
        return Ignored("malformed_message", f"type={kind} without id or from", wamid)
    if kind == "reaction":
        reaction = _obj(raw.get("reaction"))
        emoji = reaction.get("emoji") or "(removed)"
        return Ignored("reaction", f"{emoji} on {reaction.get('message_id')}", wamid)
    if kind == "revoke":
        revoke = _obj(raw.get("revoke"))
        return Ignored("deleted", f"customer deleted {revoke.get('original_message_id')}", wamid)
    if kind == "system":
        system = _obj(raw.get("system"))
        return Ignored(f"system:{system.get('type')}", str(system.get("body") or ""), wamid)
    profile = profiles.get(sender) or (next(iter(profiles.values())) if len(profiles) == 1 else {})
    edited = False
    content = raw
    if kind == "edit":
        edit = _obj(raw.get("edit"))
        original = _str(edit.get("original_message_id"))
        if not original or not isinstance(edit.get("message"), dict):
            return Ignored("edit", "edit without the original message id or the new content", wamid)
        # The engine finds the stored message by its platform id, so an edit carries the original's.
        wamid, edited, content = original, True, edit["message"]
    text, payload, attachments = _content(content)
    return IncomingMessage(
        channel=CHANNEL,
        chat_id=sender,
        customer_id=sender,
        text=text,
        display_name=_str(_obj(profile.get("profile")).get("name")),
        username=_str(_obj(profile.get("profile")).get("username")),
        phone=sender if sender.isdigit() else None,
        attachments=attachments,
        platform_message_id=wamid,
        timestamp=_timestamp(raw.get("timestamp"), now),
        payload=payload,
        edited=edited,
    )


def _content(message: dict[str, Any]) -> tuple[str, str | None, tuple[Attachment, ...]]:
    """Return (text, button payload, attachments) of a message body of any type."""
    kind = _str(message.get("type")) or "unknown"
    body = _obj(message.get(kind))
    if kind == "text":
        return str(body.get("body") or ""), None, ()
    if kind == "interactive":
        reply_kind = _str(body.get("type"))
        reply = _obj(body.get(reply_kind or ""))
        if reply_kind in ("button_reply", "list_reply") and _str(reply.get("id")):
            return "", _str(reply.get("id")), ()  # our Button.payload comes back as the reply id
        return "", None, (_unsupported(f"interactive:{reply_kind}", message),)
    if kind == "button":
        # A template's quick reply carries the template's text, not one of our payloads: read it as words.
        return str(body.get("text") or body.get("payload") or ""), None, ()
    if kind in _MEDIA_KINDS or kind == "audio":
        attachment_kind = _MEDIA_KINDS.get(kind) or ("voice" if body.get("voice") else "audio")
        caption = _str(body.get("caption"))
        extra: dict[str, Any] = {k: body[k] for k in ("sha256", "filename", "animated", "url") if k in body}
        media = Attachment(attachment_kind, _str(body.get("id")), _str(body.get("mime_type")), caption, extra)
        return caption or "", None, (media,)
    if kind == "location":
        return "", None, (Attachment("location", data=dict(body)),)
    if kind == "contacts":
        cards = _dicts(message.get("contacts"))
        return "", None, tuple(Attachment("contact", data=card) for card in cards)
    return "", None, (_unsupported(kind, message),)


def _unsupported(kind: str, message: dict[str, Any]) -> Attachment:
    data: dict[str, Any] = {"type": kind}
    errors = _errors(message.get("errors"))
    if errors:
        data["errors"] = errors
    if isinstance(message.get(kind), dict):
        data["content"] = message[kind]
    return Attachment("unsupported", data=data)


def _profiles(contacts: Any) -> dict[str, dict[str, Any]]:
    return {str(c.get("wa_id") or c.get("user_id")): c for c in _dicts(contacts)}


def _errors(errors: Any) -> str | None:
    """Return Meta's error list as one readable line: code, title and details."""
    parts = []
    for error in _dicts(errors):
        details = _obj(error.get("error_data")).get("details")
        text = f"{error.get('code')} {error.get('title') or error.get('message') or ''}".strip()
        parts.append(f"{text}: {details}" if details else text)
    return "; ".join(parts) or None


def _timestamp(raw: Any, now: datetime) -> datetime:
    try:
        moment = datetime.fromtimestamp(int(raw), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    return min(moment, now)  # a clock ahead of ours must not stretch the 24-hour window
