"""The WhatsApp channel: Cloud API webhooks in, Graph API messages out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from bot.adapters.base import Channel, DeliveryTarget, Inbox
from bot.adapters.reply_parts import PartTracker
from bot.adapters.text_split import split_text
from bot.adapters.whatsapp_payloads import CHANNEL, Ignored, StatusUpdate, parse_webhook
from bot.config import WhatsAppSettings
from bot.errors import ConfigError, SendError, StorageError
from bot.messages import Attachment, Button, IncomingMessage, OutgoingReply

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp"
TEXT_LIMIT = 4096  # characters in a text message
INTERACTIVE_BODY_LIMIT = 1024  # characters in the body of a button or list message
MAX_REPLY_BUTTONS, BUTTON_TITLE_LIMIT = 3, 20
MAX_LIST_ROWS, ROW_TITLE_LIMIT, ROW_DESCRIPTION_LIMIT = 10, 24, 72
# Graph error codes that mean "later", even when they come with HTTP 400: throttling and outages.
_TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056})
_LIST_BUTTON = {"en": "Choose", "ru": "Выбрать", "pl": "Wybierz", "uk": "Обрати"}
_MORE_OPTIONS = {"en": "More options:", "ru": "Ещё варианты:", "pl": "Więcej opcji:", "uk": "Ще варіанти:"}
_MEDIA_TYPES = {"photo": "image", "voice": "audio", "audio": "audio", "video": "video"}
_MEDIA_TYPES |= {"document": "document", "sticker": "sticker"}


class WebhookTaken(BaseModel):
    """What POST /webhooks/whatsapp answers to a signed JSON object: {"status": "ok"}."""

    status: Literal["ok"]


class WebhookRefused(BaseModel):
    """What POST /webhooks/whatsapp answers to a body it refuses: {"error"}."""

    error: str


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
_NOTIFY_DOC: dict[str, Any] = {
    "summary": "Meta's notifications (messages, statuses), signed with channels.whatsapp.app_secret",
    "tags": ["webhooks"],
    "responses": {
        200: {"model": WebhookTaken, "description": "Taken: stored, then handled in the background"},
        400: {"model": WebhookRefused, "description": "The body is not a JSON object"},
        401: {"model": WebhookRefused, "description": "No X-Hub-Signature-256"},
        403: {"model": WebhookRefused, "description": "The signature does not match the body"},
        503: {"model": WebhookRefused, "description": "Could not be stored (database down): Meta redelivers"},
    },
    "openapi_extra": {
        "parameters": [
            {
                "name": "X-Hub-Signature-256",
                "in": "header",
                "required": True,
                "description": "sha256=<HMAC-SHA256 of the body with the app secret>",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
}


class WhatsAppChannel(Channel):
    """Receives Cloud API webhooks (signed by Meta) and sends through the Graph API."""

    name = CHANNEL

    def __init__(self, settings: WhatsAppSettings, retry_delays: Sequence[float] = (0.5, 2.0, 8.0)) -> None:
        missing = [
            key
            for key in ("access_token", "phone_number_id", "app_secret", "verify_token")
            if not getattr(settings, key)
        ]
        if missing:
            raise ConfigError(f"channels.whatsapp needs {', '.join(missing)} (or the WHATSAPP_* variables)")
        self.settings = settings
        self._retry_delays = tuple(retry_delays)  # between attempts to hand a webhook item to the engine
        self._client = httpx.AsyncClient(
            base_url=settings.graph_api_base.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {settings.access_token}"},
            timeout=httpx.Timeout(settings.request_timeout_seconds),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._parts = PartTracker()  # a retried reply resumes after the parts already delivered

    def free_form_window(self) -> timedelta:
        """Return WhatsApp's customer-service window: free text only 24 hours after their message."""
        return timedelta(hours=24)

    # --- receiving -------------------------------------------------------------------------------

    def router(self, inbox: Inbox) -> APIRouter:
        """Return the webhook routes: GET for Meta's verification, POST for notifications."""
        router = APIRouter()

        @router.get(WEBHOOK_PATH, **_VERIFY_DOC)
        async def verify(request: Request) -> Response:
            query = request.query_params
            token = query.get("hub.verify_token") or ""
            if query.get("hub.mode") == "subscribe" and _same(token, self.settings.verify_token or ""):
                return PlainTextResponse(query.get("hub.challenge") or "")
            log.warning(
                "whatsapp: webhook verification refused (mode=%r, wrong token)", query.get("hub.mode")
            )
            return PlainTextResponse("verification failed", status_code=403)

        @router.post(WEBHOOK_PATH, **_NOTIFY_DOC)
        async def notify(request: Request) -> Response:
            body = await request.body()
            signature = request.headers.get("x-hub-signature-256")
            if not signature:
                log.warning("whatsapp: webhook without X-Hub-Signature-256 refused")
                return JSONResponse({"error": "missing X-Hub-Signature-256"}, status_code=401)
            if not self.signature_valid(body, signature):
                log.warning(
                    "whatsapp: webhook with a wrong signature refused (check channels.whatsapp.app_secret)"
                )
                return JSONResponse({"error": "invalid signature"}, status_code=403)
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                log.warning("whatsapp: webhook body is not JSON (%s): %r", exc, body[:500])
                return JSONResponse({"error": f"invalid JSON: {exc}"}, status_code=400)
            if not isinstance(payload, dict):
                log.warning("whatsapp: webhook body is not a JSON object: %r", body[:500])
                return JSONResponse({"error": "expected a JSON object"}, status_code=400)
            log.debug("whatsapp: webhook %s", body.decode("utf-8", "replace"))
            items = self._work(payload)
            if not items:
                return JSONResponse({"status": "ok"})
            try:
                spool_id = await inbox.spool.keep(CHANNEL, body)  # a 200 promises it is stored
            except StorageError as exc:
                log.error("whatsapp: webhook not stored, answering 503 so that Meta redelivers it: %s", exc)
                return JSONResponse(
                    {"error": "the webhook could not be stored; deliver it again later"}, status_code=503
                )
            self._spawn(self._process_spooled(inbox, spool_id, items))
            return JSONResponse({"status": "ok"})  # acknowledge at once, so Meta does not redeliver

        return router

    def signature_valid(self, body: bytes, signature: str) -> bool:
        """Return whether `signature` is `sha256=<hex HMAC of body with the app secret>`."""
        secret = (self.settings.app_secret or "").encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return _same(signature.strip().lower(), expected)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name="whatsapp-webhook")
        self._tasks.add(task)  # a reference, so the task is not garbage-collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every acknowledged webhook has been processed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def replay(self, inbox: Inbox, body: bytes) -> str | None:
        """Process a spooled webhook body again; messages already stored (same wamid) get no second reply."""
        return await self._process(inbox, self._work(json.loads(body)))

    def _work(self, payload: dict[str, Any]) -> list[IncomingMessage | StatusUpdate]:
        """Return the webhook's messages and statuses; log what needs nothing (reactions, other numbers)."""
        work: list[IncomingMessage | StatusUpdate] = []
        for item in parse_webhook(payload, self.settings.phone_number_id):
            if isinstance(item, Ignored):
                log.info("whatsapp: %s, no reply: %s (id %s)", item.kind, item.detail, item.wamid)
            else:
                work.append(item)
        return work

    async def _process_spooled(
        self, inbox: Inbox, spool_id: int, items: list[IncomingMessage | StatusUpdate]
    ) -> None:
        error = await self._process(inbox, items)
        try:
            await inbox.spool.processed(spool_id, error)
        except Exception:  # the database is down: the body stays unprocessed and is replayed
            log.exception("whatsapp: could not mark spooled webhook %d as processed", spool_id)

    async def _process(self, inbox: Inbox, items: list[IncomingMessage | StatusUpdate]) -> str | None:
        """Hand every item to the engine (with retries); return what failed, None when all were handled."""
        errors: list[str] = []
        for item in items:
            try:
                await self._with_retries(inbox, item)
            except Exception as exc:
                # Meta already has its 200; the body is in the spool, which replays it later.
                log.exception(
                    "whatsapp: %s not processed after %d attempts; its webhook is kept in the spool",
                    _describe(item),
                    len(self._retry_delays) + 1,
                )
                errors.append(f"{_describe(item)}: {type(exc).__name__}: {exc}")
        return "; ".join(errors) or None

    async def _with_retries(self, inbox: Inbox, item: IncomingMessage | StatusUpdate) -> None:
        for delay in (*self._retry_delays, None):
            try:
                await self._handle(inbox, item)
                return
            except Exception as exc:
                if delay is None:
                    raise
                log.warning("whatsapp: %s failed (%r); retrying in %.1fs", _describe(item), exc, delay)
                await asyncio.sleep(delay)

    async def _handle(self, inbox: Inbox, item: IncomingMessage | StatusUpdate) -> None:
        if isinstance(item, StatusUpdate):
            await inbox.delivery_status(CHANNEL, item.wamid, item.status, item.error)
            return
        result = await inbox.receive(item)  # stored, deduplicated by wamid, answered
        if not getattr(result, "duplicate", False) and not item.edited and item.platform_message_id:
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
            log.warning("whatsapp: could not mark %s as read: %s", wamid, exc)

    async def stop(self) -> None:
        """Finish processing acknowledged webhooks (up to 10 s), then close the HTTP client."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=10)
            for task in pending:
                log.error(
                    "whatsapp: stopping with a webhook still in processing; it is cancelled, and replayed "
                    "from the spool by the next start"
                )
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

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
        path = f"{self.settings.phone_number_id}/messages"
        try:
            response = await self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise SendError(f"WhatsApp Graph API timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise SendError(f"WhatsApp Graph API unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _send_error(response)
        try:
            return response.json()
        except ValueError:
            return {}


def _same(given: str, expected: str) -> bool:
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may carry anything.
    return hmac.compare_digest(given.encode(), expected.encode())


def _describe(item: IncomingMessage | StatusUpdate) -> str:
    if isinstance(item, StatusUpdate):
        return f"status {item.status} of {item.wamid}"
    return f"message {item.platform_message_id} from {item.customer_id}"


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
    """Translate a Graph API error response into a SendError: transient (retried) or permanent."""
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
    transient = (
        response.status_code in (408, 429)
        or response.status_code >= 500
        or code in _TRANSIENT_CODES
        or error.get("is_transient") is True
    )
    return SendError(text, retry_after=_retry_after(response.headers), permanent=not transient)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Return how long Meta asked us to wait: Retry-After, or the business use-case usage estimate."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    usage = headers.get("x-business-use-case-usage")
    if usage:
        try:
            minutes = [
                float(item.get("estimated_time_to_regain_access") or 0)
                for items in json.loads(usage).values()
                for item in items
            ]
        except (ValueError, AttributeError, TypeError):
            return None
        if max(minutes, default=0) > 0:
            return max(minutes) * 60
    return None
