"""The WhatsApp channel: Cloud API webhooks in, Graph API messages out."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from bot.adapters.base import DeliveryTarget, Inbox
from bot.adapters.platform_api import PlatformClient, retry_after, send_error, transient_status
from bot.adapters.registry import register_channel
from bot.adapters.reply_parts import PartTracker
from bot.adapters.text_split import split_text
from bot.adapters.webhook import (
    RETRY_DELAYS,
    Refused,
    WebhookChannel,
    hmac_sha256,
    same_secret,
    webhook_openapi,
)
from bot.adapters.whatsapp_payloads import CHANNEL, Ignored, StatusUpdate, parse_webhook
from bot.config import Settings, WhatsAppSettings
from bot.errors import ConfigError, RecipientUnavailable, SendError
from bot.messages import Attachment, Button, IncomingMessage, OutgoingReply

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp"
TEXT_LIMIT = 4096  # characters in a text message
INTERACTIVE_BODY_LIMIT = 1024  # characters in the body of a button or list message
MAX_REPLY_BUTTONS, BUTTON_TITLE_LIMIT = 3, 20
MAX_LIST_ROWS, ROW_TITLE_LIMIT, ROW_DESCRIPTION_LIMIT = 10, 24, 72
_CREDENTIALS = ("access_token", "phone_number_id", "app_secret", "verify_token")
# Graph error codes that mean "later", even when they come with HTTP 400: throttling and outages.
_TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056})
# "Message undeliverable" (no WhatsApp on the number, terms not accepted, an app too old): every send to
# them fails until they act, and they come back by writing to us. (Meta never reports a block as such.)
_UNAVAILABLE_CODES = frozenset({131026})
_LIST_BUTTON = {"en": "Choose", "ru": "Выбрать", "pl": "Wybierz", "uk": "Обрати"}
_MORE_OPTIONS = {"en": "More options:", "ru": "Ещё варианты:", "pl": "Więcej opcji:", "uk": "Ще варіанти:"}
_MEDIA_TYPES = {"photo": "image", "voice": "audio", "audio": "audio", "video": "video"}
_MEDIA_TYPES |= {"document": "document", "sticker": "sticker"}

_VERIFY_DOC: dict[str, Any] = {
    "summary": "Meta's webhook verification: echoes hub.challenge for the right hub.verify_token",
    "tags": ["webhooks"],
    "response_class": PlainTextResponse,
    "responses": {
        200: {"description": "hub.challenge", "content": {"text/plain": {"schema": {"type": "string"}}}},
        403: {
            "description": "Wrong hub.mode or hub.verify_token: verification failed",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
    "openapi_extra": {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in ("hub.mode", "hub.verify_token", "hub.challenge")
        ]
    },
}

WhatsAppItem = IncomingMessage | StatusUpdate


@register_channel(CHANNEL)
class WhatsAppChannel(WebhookChannel[WhatsAppItem]):
    """Receives Cloud API webhooks (signed by Meta) and sends through the Graph API."""

    name = CHANNEL
    webhook_path = WEBHOOK_PATH
    webhook_doc = webhook_openapi(
        "Meta's notifications (messages, statuses), signed with channels.whatsapp.app_secret",
        "X-Hub-Signature-256",
        "sha256=<HMAC-SHA256 of the body with the app secret>",
        {401: "No X-Hub-Signature-256", 403: "The signature does not match the body"},
        "Meta",
    ) | {"name": "notify"}  # the route's name, so the published operationId stays as it was

    def __init__(self, settings: WhatsAppSettings, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        missing = [key for key in _CREDENTIALS if not getattr(settings, key)]
        if missing:
            raise ConfigError(f"channels.whatsapp needs {', '.join(missing)} (or the WHATSAPP_* variables)")
        super().__init__(retry_delays)
        self.settings = settings
        self._api = PlatformClient(
            "WhatsApp Graph API",
            settings.graph_api_base,
            headers={"Authorization": f"Bearer {settings.access_token}"},
            timeout=settings.request_timeout_seconds,
            error=_send_error,
        )
        self._parts = PartTracker()  # a retried reply resumes after the parts already delivered

    @classmethod
    def configured(cls, settings: Settings) -> WhatsAppChannel | None:
        """Return the channel when all four credentials are set (Meta's webhooks need every one)."""
        whatsapp = settings.channels.whatsapp
        return cls(whatsapp) if all(getattr(whatsapp, key) for key in _CREDENTIALS) else None

    def free_form_window(self) -> timedelta:
        """Return WhatsApp's customer-service window: free text only 24 hours after their message."""
        return timedelta(hours=24)

    # --- receiving -------------------------------------------------------------------------------

    def router(self, inbox: Inbox) -> APIRouter:
        """Return the webhook routes: GET for Meta's verification, POST for notifications."""
        router = super().router(inbox)
        router.add_api_route(WEBHOOK_PATH, self.verify, methods=["GET"], **_VERIFY_DOC)
        return router

    async def verify(self, request: Request) -> Response:
        """Echo hub.challenge when Meta subscribes with our hub.verify_token."""
        query = request.query_params
        token = query.get("hub.verify_token") or ""
        if query.get("hub.mode") == "subscribe" and same_secret(token, self.settings.verify_token or ""):
            return PlainTextResponse(query.get("hub.challenge") or "")
        log.warning("whatsapp: webhook verification refused (mode=%r, wrong token)", query.get("hub.mode"))
        return PlainTextResponse("verification failed", status_code=403)

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        """Refuse a body without Meta's X-Hub-Signature-256 (401) or with a wrong one (403)."""
        signature = headers.get("x-hub-signature-256")
        if not signature:
            log.warning("whatsapp: webhook without X-Hub-Signature-256 refused")
            raise Refused(401, "missing X-Hub-Signature-256")
        if not self.signature_valid(body, signature):
            log.warning(
                "whatsapp: webhook with a wrong signature refused (check channels.whatsapp.app_secret)"
            )
            raise Refused(403, "invalid signature")

    def signature_valid(self, body: bytes, signature: str) -> bool:
        """Return whether `signature` is `sha256=<hex HMAC of body with the app secret>`."""
        expected = "sha256=" + hmac_sha256(self.settings.app_secret or "", body)
        return same_secret(signature.strip().lower(), expected)

    def items(self, payload: dict[str, Any]) -> list[WhatsAppItem]:
        """Return the webhook's messages and statuses; log what needs nothing (reactions, other numbers)."""
        work: list[WhatsAppItem] = []
        for item in parse_webhook(payload, self.settings.phone_number_id):
            if isinstance(item, Ignored):
                log.info("whatsapp: %s, no reply: %r (id %r)", item.kind, item.detail, item.wamid)
            else:
                work.append(item)
        return work

    def describe(self, item: WhatsAppItem) -> str:
        """Return how logs and the spool name a message or a status."""
        if isinstance(item, StatusUpdate):
            return f"status {item.status!r} of {item.wamid!r}"
        return super().describe(item)

    async def handle(self, inbox: Inbox, item: WhatsAppItem) -> None:
        """Record a status, or hand a message to the engine and mark it read (once: not for redeliveries)."""
        if isinstance(item, StatusUpdate):
            await inbox.delivery_status(CHANNEL, item.wamid, item.status, item.error)
            return
        received = await inbox.receive(item)  # stored, deduplicated by wamid, answered
        if not received.duplicate and not item.edited and item.platform_message_id:
            await self.mark_read(item.platform_message_id)

    # --- sending ---------------------------------------------------------------------------------

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        """Send a reply as one or more Graph API messages; return the last one's wamid."""
        return await self._parts.send(target.message_id, self._render(target, reply), self._post_message)

    async def send_template(
        self, target: DeliveryTarget, name: str | None = None, language: str | None = None
    ) -> str | None:
        """Send an approved template (allowed outside the 24-hour window); return its wamid."""
        name = name or self.settings.reengagement_template
        if not name:
            raise SendError(
                "no template given and channels.whatsapp.reengagement_template is not set", permanent=True
            )
        template = {
            "name": name,
            "language": {"code": language or self.settings.reengagement_template_language},
        }
        return await self._post_message(_envelope(target.chat_id, "template", template))

    async def mark_read(self, wamid: str) -> None:
        """Mark a customer's message as read (blue ticks); a failure is only logged."""
        try:
            await self._post({"messaging_product": "whatsapp", "status": "read", "message_id": wamid})
        except SendError as exc:
            log.warning("whatsapp: could not mark %r as read: %r", wamid, exc)

    async def stop(self) -> None:
        """Finish processing acknowledged webhooks (up to 10 s), then close the HTTP client."""
        await super().stop()
        await self._api.aclose()

    def _render(self, target: DeliveryTarget, reply: OutgoingReply) -> list[dict[str, Any]]:
        to = target.chat_id
        chunks = split_text(reply.text, TEXT_LIMIT)
        bodies: list[dict[str, Any]] = []
        if reply.buttons:
            last = chunks.pop() if chunks else ""
            if len(last) > INTERACTIVE_BODY_LIMIT:
                *head, last = split_text(last, INTERACTIVE_BODY_LIMIT)
                chunks.extend(head)
            bodies += [_text(to, chunk) for chunk in chunks]
            bodies += _interactive(to, last, reply.buttons, target.language or "en")
        else:
            bodies += [_text(to, chunk) for chunk in chunks]
        bodies += [_attachment(to, attachment) for attachment in reply.attachments]
        if not bodies:
            raise SendError("empty reply: no text, buttons or attachments", permanent=True)
        return bodies

    async def _post_message(self, body: dict[str, Any]) -> str | None:
        data = await self._post(body)
        messages = data.get("messages") if isinstance(data, dict) else None
        if (
            isinstance(messages, list)
            and messages
            and isinstance(messages[0], dict)
            and messages[0].get("id")
        ):
            return str(messages[0]["id"])
        # Accepted but no id: resending could duplicate the message, so report success without one.
        log.warning("whatsapp: message accepted without an id in the response: %r", data)
        return None

    async def _post(self, body: dict[str, Any]) -> Any:
        return await self._api.post(f"{self.settings.phone_number_id}/messages", body)


def _envelope(to: str, kind: str, content: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }


def _text(to: str, text: str) -> dict[str, Any]:
    return _envelope(to, "text", {"body": text, "preview_url": "http://" in text or "https://" in text})


def _interactive(to: str, text: str, buttons: Sequence[Button], language: str) -> list[dict[str, Any]]:
    """Return reply buttons (up to 3) or list messages (10 rows each) carrying `text`."""
    if len(buttons) <= MAX_REPLY_BUTTONS:
        titles = _unique([b.title for b in buttons], BUTTON_TITLE_LIMIT)
        action: dict[str, Any] = {
            "buttons": [
                {"type": "reply", "reply": {"id": b.payload[:256], "title": title}}
                for b, title in zip(buttons, titles, strict=True)
            ]
        }
        body = text or _LIST_BUTTON.get(language, _LIST_BUTTON["en"])
        return [_envelope(to, "interactive", {"type": "button", "body": {"text": body}, "action": action})]
    messages = []
    for start in range(0, len(buttons), MAX_LIST_ROWS):
        group = buttons[start : start + MAX_LIST_ROWS]
        titles = _unique([b.title for b in group], ROW_TITLE_LIMIT)
        rows: list[dict[str, str]] = []
        for button, title in zip(group, titles, strict=True):
            row = {"id": button.payload[:200], "title": title}
            if title != button.title:  # the full title still shows, as the row's description
                row["description"] = _fit(button.title, ROW_DESCRIPTION_LIMIT)
            rows.append(row)
        if start == 0:
            body = text or _LIST_BUTTON.get(language, _LIST_BUTTON["en"])
        else:
            body = _MORE_OPTIONS.get(language, _MORE_OPTIONS["en"])
        action = {
            "button": _LIST_BUTTON.get(language, _LIST_BUTTON["en"]),
            "sections": [{"rows": rows}],
        }
        messages.append(
            _envelope(to, "interactive", {"type": "list", "body": {"text": body}, "action": action})
        )
    return messages


def _fit(title: str, limit: int) -> str:
    """Return `title` within `limit` characters, cut at a word where possible and marked with '…'."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[: limit - 1]
    if " " in cut and cut.rindex(" ") >= limit // 2:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-–—") + "…"


def _unique(titles: Sequence[str], limit: int) -> list[str]:
    # WhatsApp rejects two buttons with the same title, which truncation can produce.
    result: list[str] = []
    for title in titles:
        fitted = _fit(title, limit)
        number = 2
        while fitted in result:
            suffix = f" {number}"
            fitted = _fit(title, limit - len(suffix)) + suffix
            number += 1
        result.append(fitted)
    return result


def _attachment(to: str, attachment: Attachment) -> dict[str, Any]:
    data = attachment.data
    if attachment.kind == "location":
        fields = ("latitude", "longitude", "name", "address")
        return _envelope(to, "location", {k: data[k] for k in fields if k in data})
    if attachment.kind == "contact":
        return _envelope(to, "contacts", [data])
    kind = _MEDIA_TYPES.get(attachment.kind)
    link = data.get("link") or data.get("url")
    if kind is None or not (attachment.file_id or link):
        raise SendError(
            f"cannot send a {attachment.kind} attachment without a media id or link", permanent=True
        )
    media: dict[str, Any] = {"id": attachment.file_id} if attachment.file_id else {"link": link}
    if attachment.caption and kind in ("image", "video", "document"):
        media["caption"] = attachment.caption
    if kind == "document" and data.get("filename"):
        media["filename"] = data["filename"]
    return _envelope(to, kind, media)


def _send_error(response: httpx.Response) -> SendError:
    """Translate a Graph API error answer into a SendError: transient (retried), permanent, or unavailable."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    error: dict[str, Any] = {}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
    code = error.get("code")
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    text = f"WhatsApp Graph API HTTP {response.status_code}"
    if code is not None:
        text += f", error {code}" + (f"/{error['error_subcode']}" if error.get("error_subcode") else "")
    text += f": {error.get('message') or response.text[:300] or response.reason_phrase}"
    if details:
        text += f" ({details})"
    if code in _UNAVAILABLE_CODES:
        return RecipientUnavailable(text)
    transient = (
        transient_status(response.status_code)
        or code in _TRANSIENT_CODES
        or error.get("is_transient") is True
    )
    wait = retry_after(response.headers)
    return send_error(
        text, transient=transient, retry_after=_usage_wait(response.headers) if wait is None else wait
    )


def _usage_wait(headers: httpx.Headers) -> float | None:
    """Return how long Meta's business use-case usage header says until we may call again."""
    usage = headers.get("x-business-use-case-usage")
    if not usage:
        return None
    try:
        minutes = [
            float(item.get("estimated_time_to_regain_access") or 0)
            for items in json.loads(usage).values()
            for item in items
        ]
    except (ValueError, AttributeError, TypeError):
        return None
    return max(minutes) * 60 if max(minutes, default=0) > 0 else None
