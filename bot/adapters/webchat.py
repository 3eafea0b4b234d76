"""The web chat: a website visitor talks to the bot (and to agents) through a small JSON API.

    POST /api/v1/webchat/messages  {"text"} or {"payload", "text"}  -> the bot's immediate replies
    GET  /api/v1/webchat/messages?after=ID                        -> the stored chat (both ways)
    GET  /api/v1/webchat/events?since=ID                          -> later replies, as SSE

The visitor id is chosen by the browser (a random string of 16-64 letters, digits, _ or -, kept in
localStorage) and is the only key to the chat, so it must not be guessable; it travels in the
X-Visitor-Id header, never in a URL (the older /api/v1/webchat/{visitor_id}/... routes remain, deprecated).
Messages are rate-limited per visitor (and optionally per client address) by the service's limiter, which
Redis makes shared across processes (bot/web/ratelimit.py). Replies the outbox hands to
`send` wake the visitor's stream; the stream itself reads from the stored messages (`Inbox.chat_view`), so
a reply sent while no stream was connected is replayed with `?since=` (or the `Last-Event-ID` the browser's
EventSource sends when it reconnects), and streams in other processes pick it up within `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from bot.adapters.base import Channel, DeliveryTarget, Inbox
from bot.adapters.registry import register_channel
from bot.adapters.webchat_payloads import WebchatChat, WebchatIn, WebchatPosted, reply_body
from bot.config import Settings, WebchatSettings
from bot.messages import IncomingMessage, OutgoingReply
from bot.storage.models import MAX_ID, row_id
from bot.web import sse
from bot.web.errors import api_error, errors
from bot.web.ratelimit import Limiter, MemoryLimiter, Quota, digest

log = logging.getLogger(__name__)

CHANNEL = "webchat"
PREFIX = "/api/v1/webchat"
VISITOR_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
VISITOR_HEADER = "X-Visitor-Id"
SETTLE_SECONDS = 10.0  # a message older than this has been committed (ids are taken before commit)
_VISITOR = re.compile(VISITOR_PATTERN)
Visitor = Annotated[str, Path(description="The visitor's random id: 16-64 letters, digits, _ or -")]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="Only messages after this id")]
Since = Annotated[int | None, Query(ge=0, le=MAX_ID, description="Replay replies after this id")]
Origin = Annotated[str | None, Header()]
LastEventId = Annotated[str | None, Header()]
VisitorHeader = Annotated[
    str | None,
    Header(alias=VISITOR_HEADER, description="The visitor's random id: 16-64 letters, digits, _ or -"),
]


def _status(view: dict[str, Any]) -> dict[str, Any]:
    return {"state": view["state"], "queue_position": view["queue_position"], "agent": view["agent"]}


def _written(message: dict[str, Any]) -> tuple[int, datetime | None]:
    """A stored message's id and when it was written, for the stream's cursor."""
    at = message["at"]
    return message["id"], datetime.fromisoformat(at) if at else None


def _visitor(visitor_id: str | None) -> str:
    if not visitor_id or not _VISITOR.match(visitor_id):
        raise api_error(
            422,
            "invalid_visitor_id",
            f"send the visitor id in the {VISITOR_HEADER} header: 16-64 characters of "
            "A-Z a-z 0-9 _ - (a random id kept by the browser)",
        )
    return visitor_id


@register_channel(CHANNEL)
class WebchatChannel(Channel):
    """The web chat channel: the visitor's browser is the platform; our database is its message store."""

    name = CHANNEL

    def __init__(self, settings: WebchatSettings) -> None:
        self.settings = settings
        self.limiter: Limiter = MemoryLimiter()  # unless the service passes its own (inbox.limiter)
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @classmethod
    def configured(cls, settings: Settings) -> WebchatChannel | None:
        """Return the channel unless channels.webchat.enabled is false."""
        return cls(settings.channels.webchat) if settings.channels.webchat.enabled else None

    # --- outbound: the outbox calls this; the visitor's streams read the stored message ------------

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        """Wake the visitor's open streams; the reply itself is already stored (the outbox row)."""
        self.wake(target.customer_id)
        return f"{CHANNEL}:{target.message_id}" if target.message_id is not None else None

    def wake(self, visitor_id: str) -> None:
        for waiter in self._waiters.get(visitor_id, ()):
            waiter.set()

    @asynccontextmanager
    async def _subscribe(self, visitor_id: str) -> AsyncIterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.setdefault(visitor_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(visitor_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(visitor_id, None)

    # --- CORS for sites that embed the widget ------------------------------------------------------

    def _cors(self, origin: str | None) -> dict[str, str]:
        allowed = self.settings.allowed_origins
        if not origin or not allowed:
            return {}
        if "*" in allowed or origin in allowed:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Headers": f"Content-Type, Last-Event-ID, {VISITOR_HEADER}",
                "Access-Control-Expose-Headers": "Retry-After",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            }
        return {}

    # --- inbound: the routes -------------------------------------------------------------------------

    def router(self, inbox: Inbox) -> APIRouter:
        """Return the web chat's routes (see the module's docstring)."""
        # every route checks the visitor id (422 invalid_visitor_id) and reads the chat (503 unavailable)
        router = APIRouter(prefix=PREFIX, tags=["webchat"], responses=errors(422, 503))
        routes = _Routes(self, inbox)
        # The visitor id travels in a header, so it never lands in an access log or a proxy's log.
        # (The names keep the published operationIds as they were.)
        add = router.add_api_route
        add("/messages", routes.preflight, methods=["OPTIONS"], include_in_schema=False)
        add("/events", routes.preflight, methods=["OPTIONS"], include_in_schema=False)
        add(
            "/messages",
            routes.post_message,
            methods=["POST"],
            name="post_message_route",
            summary="Send a visitor's message; returns the bot's replies",
            responses=_POSTING_DOC,
        )
        add(
            "/messages",
            routes.get_messages,
            methods=["GET"],
            name="get_messages_route",
            summary="The stored chat, both directions, oldest first",
        )
        add(
            "/events",
            routes.events,
            methods=["GET"],
            name="events_route",
            summary="Later replies (agents, queue updates) and state changes, as Server-Sent Events",
            **_STREAM_DOC,
        )
        # Deprecated: the visitor id in the path (older front ends; plain EventSource). It works the
        # same, but the id is then written to every access log on the way (ours redacts it).
        add("/{visitor_id}/messages", routes.legacy_preflight, methods=["OPTIONS"], include_in_schema=False)
        add("/{visitor_id}/events", routes.legacy_preflight, methods=["OPTIONS"], include_in_schema=False)
        add(
            "/{visitor_id}/messages",
            routes.legacy_post_message,
            methods=["POST"],
            deprecated=True,
            summary="Deprecated: use POST /messages",
            responses=_POSTING_DOC,
        )
        add(
            "/{visitor_id}/messages",
            routes.legacy_get_messages,
            methods=["GET"],
            deprecated=True,
            summary="Deprecated: use GET /messages",
        )
        add(
            "/{visitor_id}/events",
            routes.legacy_events,
            methods=["GET"],
            deprecated=True,
            summary="Deprecated: use GET /events",
            **_STREAM_DOC,
        )
        return router

    def _stream(
        self,
        request: Request,
        visitor_id: str,
        start: int | None,
        first: dict[str, Any],
        view: Any,
    ) -> AsyncIterator[str]:
        # `message` events carry the stored reply (id = message id, so EventSource resumes after it);
        # `status` events say bot / waiting (with the queue position) / with_agent (with the agent's name).
        cursor = sse.Cursor(first["last_id"] if start is None else start, SETTLE_SECONDS)
        unread: dict[str, Any] | None = first if start is not None else None
        status: dict[str, Any] | None = None

        async def read() -> list[str]:
            nonlocal unread, status
            current = unread if unread is not None else await view(visitor_id, cursor.position)
            unread = None
            events = [
                sse.event(message, "message", message["id"])
                for message in cursor.take(current["messages"], _written)
                if message["direction"] == "out"
            ]
            latest = _status(current)
            if latest != status:
                status = latest
                events.append(sse.event(latest, "status"))
            return events

        what = f"webchat: reading the chat of visitor ~{digest(visitor_id)[:8]}"
        return sse.stream(request, self._subscribe(visitor_id), read, self.settings.poll_seconds, what)


_STREAM_DOC: dict[str, Any] = {
    "response_class": StreamingResponse,
    "responses": {200: {"content": {"text/event-stream": {}}}},
}
_POSTING_DOC = errors(
    429,
    422,
    described={
        422: "A bad visitor id (invalid_visitor_id), no text nor payload (empty_message), "
        "or the request failed validation",
        429: "Too many messages from this visitor (or address): wait Retry-After seconds; not stored",
    },
)


class _Routes:
    """The web chat's endpoints for one channel and its inbox (FastAPI calls the bound methods)."""

    def __init__(self, channel: WebchatChannel, inbox: Inbox) -> None:
        self.channel = channel
        self.inbox = inbox
        self.limiter = inbox.limiter or channel.limiter

    async def preflight(self, origin: Origin = None) -> Response:
        return Response(status_code=204, headers=self.channel._cors(origin))

    async def legacy_preflight(self, visitor_id: Visitor, origin: Origin = None) -> Response:
        return Response(status_code=204, headers=self.channel._cors(origin))

    async def post_message(
        self,
        request: Request,
        response: Response,
        body: WebchatIn,
        x_visitor_id: VisitorHeader = None,
        origin: Origin = None,
    ) -> WebchatPosted:
        return await self._post(request, response, x_visitor_id, body, origin)

    async def legacy_post_message(
        self,
        request: Request,
        response: Response,
        visitor_id: Visitor,
        body: WebchatIn,
        origin: Origin = None,
    ) -> WebchatPosted:
        return await self._post(request, response, visitor_id, body, origin)

    async def get_messages(
        self, response: Response, x_visitor_id: VisitorHeader = None, after: After = 0, origin: Origin = None
    ) -> WebchatChat:
        return await self._chat(response, x_visitor_id, after, origin)

    async def legacy_get_messages(
        self, response: Response, visitor_id: Visitor, after: After = 0, origin: Origin = None
    ) -> WebchatChat:
        return await self._chat(response, visitor_id, after, origin)

    async def events(
        self,
        request: Request,
        x_visitor_id: VisitorHeader = None,
        since: Since = None,
        last_event_id: LastEventId = None,
        origin: Origin = None,
    ) -> StreamingResponse:
        return await self._events(request, x_visitor_id, since, last_event_id, origin)

    async def legacy_events(
        self,
        request: Request,
        visitor_id: Visitor,
        since: Since = None,
        last_event_id: LastEventId = None,
        origin: Origin = None,
    ) -> StreamingResponse:
        return await self._events(request, visitor_id, since, last_event_id, origin)

    async def _post(
        self,
        request: Request,
        response: Response,
        visitor_id: str | None,
        body: WebchatIn,
        origin: str | None,
    ) -> WebchatPosted:
        cors = self.channel._cors(origin)
        visitor_id = _visitor(visitor_id)
        await self._limit(request, visitor_id, cors)
        if not body.text.strip() and not body.payload:
            raise api_error(422, "empty_message", "send some text (or a button's payload)", cors)
        message = IncomingMessage(
            channel=CHANNEL,
            chat_id=visitor_id,
            customer_id=visitor_id,
            text=body.text,
            display_name=(body.name or "").strip() or None,
            language_hint=body.language,
            platform_message_id=body.client_message_id or uuid.uuid4().hex,
            payload=body.payload,
        )
        try:
            received = await self.inbox.receive(message)
        except Exception as exc:
            log.exception(
                "webchat: the message of visitor ~%s could not be handled (text %r)",
                digest(visitor_id)[:8],
                body.text[:200],
            )
            raise api_error(
                503,
                "unavailable",
                f"the message could not be handled ({type(exc).__name__}); send it again "
                "with the same client_message_id",
                cors,
            ) from exc
        state = await self.view(visitor_id, None)
        response.headers.update(cors)
        return WebchatPosted(
            **_status(state),
            duplicate=received.duplicate,
            replies=[reply_body(message_id, reply) for message_id, reply in received.replies],
            last_id=state["last_id"],
        )

    async def _chat(
        self, response: Response, visitor_id: str | None, after: int, origin: str | None
    ) -> WebchatChat:
        visitor_id = _visitor(visitor_id)
        state = await self.view(visitor_id, after)
        response.headers.update(self.channel._cors(origin))
        return WebchatChat(**_status(state), last_id=state["last_id"], messages=state["messages"])

    async def _events(
        self,
        request: Request,
        visitor_id: str | None,
        since: int | None,
        last_event_id: str | None,
        origin: str | None,
    ) -> StreamingResponse:
        visitor_id = _visitor(visitor_id)
        start = since
        resume = row_id(last_event_id)
        if resume is not None:  # EventSource reconnecting: resume after it
            start = max(start or 0, resume)
        first = await self.view(visitor_id, start)
        return sse.response(
            self.channel._stream(request, visitor_id, start, first, self.view), self.channel._cors(origin)
        )

    async def view(self, visitor_id: str, after: int | None) -> dict[str, Any]:
        """Return the visitor's chat (Inbox.chat_view); 503 when this process cannot read chats."""
        if self.inbox.chat_view is None:
            raise api_error(503, "unavailable", "this process cannot read chats (no chat_view in the inbox)")
        return await self.inbox.chat_view(CHANNEL, visitor_id, after)

    async def _limit(self, request: Request, visitor_id: str, cors: dict[str, str]) -> None:
        settings = self.channel.settings
        quotas = [Quota(f"webchat:visitor:{digest(visitor_id)}", settings.rate_limit_per_minute, 60.0)]
        if settings.rate_limit_per_address_per_minute:
            address = request.client.host if request.client else "unknown"
            quotas.append(
                Quota(f"webchat:address:{address}", settings.rate_limit_per_address_per_minute, 60.0)
            )
        hit = await self.limiter.hit(*quotas)
        if not hit.allowed:
            retry = hit.retry_seconds
            raise api_error(
                429,
                "rate_limited",
                f"too many messages (at most {settings.rate_limit_per_minute} a minute); try again in {retry} s",
                {"Retry-After": str(retry), **cors},
            )
