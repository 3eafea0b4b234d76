"""Building blocks of a webhook channel: authenticate, spool, acknowledge, process, mark processed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, ClassVar, Generic, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from bot.adapters.base import Channel, Inbox
from bot.errors import StorageError
from bot.messages import IncomingMessage

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
RETRY_DELAYS = (0.5, 2.0, 8.0)  # seconds between attempts to hand one item to the engine


class WebhookTaken(BaseModel):
    """What a spooled webhook answers to a body it took: {"status": "ok"}."""

    status: Literal["ok"]


class WebhookRefused(BaseModel):
    """What a spooled webhook answers to a body it refuses: {"error"}."""

    error: str


class Refused(Exception):
    """A webhook request turned away: the HTTP status, and the error the sender is shown."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def same_secret(given: str, expected: str) -> bool:
    """Return whether a secret or signature matches, in constant time; any text compares, none raises."""
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may carry anything.
    return hmac.compare_digest(given.encode(), expected.encode())


def hmac_sha256(secret: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of `body` keyed with `secret`: how most platforms sign webhooks."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def json_object(body: bytes, channel: str, what: str = "a JSON object") -> dict[str, Any]:
    """Return the body as a JSON object; log and raise Refused(400) when it is not `what`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        log.warning("%s: webhook body is not JSON (%s): %r", channel, exc, body[:500])
        raise Refused(400, f"invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        log.warning("%s: webhook body is not a JSON object: %r", channel, body[:500])
        raise Refused(400, f"expected {what}")
    return payload


async def with_retries(work: Callable[[], Awaitable[T]], delays: Sequence[float], what: str) -> T:
    """Return what `work` returns, trying again after each of `delays` seconds; re-raise the last failure."""
    for delay in (*delays, None):
        try:
            return await work()
        except Exception as exc:
            if delay is None:
                raise
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("not reached: the last attempt returns or raises")


def webhook_openapi(
    summary: str,
    header: str,
    header_description: str,
    refused: Mapping[int, str],
    platform: str = "the platform",
) -> dict[str, Any]:
    """Return the OpenAPI keywords of a spooled webhook's POST route, signed in the request `header`."""
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": WebhookTaken, "description": "Taken: stored, then handled in the background"},
        400: {"model": WebhookRefused, "description": "The body is not a JSON object"},
    }
    responses |= {status: {"model": WebhookRefused, "description": text} for status, text in refused.items()}
    responses[503] = {
        "model": WebhookRefused,
        "description": f"Could not be stored (database down): {platform} redelivers",
    }
    parameter = {
        "name": header,
        "in": "header",
        "required": True,
        "description": header_description,
        "schema": {"type": "string"},
    }
    body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "summary": summary,
        "tags": ["webhooks"],
        "responses": responses,
        "openapi_extra": {"parameters": [parameter], "requestBody": body},
    }


class WebhookChannel(Channel, Generic[Item]):
    """A channel whose platform posts webhooks and redelivers whatever is not answered with a 2xx.

    A POST to `webhook_path` is authenticated, stored in the spool (503 when it cannot be: the platform
    delivers it again), acknowledged with 200 at once, then processed in the background: each item goes
    to the engine with retries, and the body is marked processed, or kept with its error and replayed by
    the spool later. A subclass implements `authenticate`, `items` and `send` (and `handle` for items that
    are not customer messages, such as delivery receipts).
    """

    webhook_path: ClassVar[str]
    webhook_doc: ClassVar[dict[str, Any]] = {}  # OpenAPI keywords of the POST route (see webhook_openapi())

    def __init__(self, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self._retry_delays = tuple(retry_delays)  # between attempts to hand an item to the engine
        self._tasks: set[asyncio.Task[None]] = set()
        # one chat's messages are handled one at a time, in arrival order (asyncio.Lock is first come,
        # first served); the count says how many tasks use a chat's lock, so an idle one is dropped
        self._chats: dict[str, tuple[asyncio.Lock, int]] = {}

    @abstractmethod
    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise Refused (401, 403) unless the platform sent this body (its signature or secret token)."""

    @abstractmethod
    def items(self, payload: dict[str, Any]) -> list[Item]:
        """Return what in this body needs handling (messages, receipts); [] when nothing does."""

    async def handle(self, inbox: Inbox, item: Item) -> None:
        """Hand one item to the engine: a customer message by default; override for other kinds."""
        if not isinstance(item, IncomingMessage):
            raise TypeError(f"{self.name}: handle() does not know {type(item).__name__}; override it")
        await inbox.receive(item)

    def describe(self, item: Item) -> str:
        """Return how logs and the spool's last_error name an item."""
        if isinstance(item, IncomingMessage):
            return f"message {item.platform_message_id!r} from {item.customer_id!r}"
        return type(item).__name__

    # --- receiving -------------------------------------------------------------------------------

    def router(self, inbox: Inbox) -> APIRouter:
        """Return POST `webhook_path`, which takes the platform's webhooks."""
        router = APIRouter()

        async def webhook(request: Request) -> Response:
            return await self.take(inbox, request.headers, await request.body())

        router.add_api_route(self.webhook_path, webhook, methods=["POST"], **self.webhook_doc)
        return router

    async def take(self, inbox: Inbox, headers: Mapping[str, str], body: bytes) -> JSONResponse:
        """Authenticate, store and acknowledge one webhook body; its items are processed in the background."""
        try:
            self.authenticate(headers, body)
            payload = json_object(body, self.name)
        except Refused as refused:
            return JSONResponse({"error": refused.error}, status_code=refused.status)
        log.debug("%s: webhook %r", self.name, body.decode("utf-8", "replace"))
        items = self.items(payload)
        if not items:
            return JSONResponse({"status": "ok"})
        try:
            spool_id = await inbox.spool.keep(self.name, body)  # a 200 promises it is stored
        except StorageError as exc:
            log.error(
                "%s: webhook not stored, answering 503 so that the platform redelivers it: %r", self.name, exc
            )
            return JSONResponse(
                {"error": "the webhook could not be stored; deliver it again later"}, status_code=503
            )
        self._spawn(self._process_spooled(inbox, spool_id, items))
        return JSONResponse({"status": "ok"})  # acknowledge at once, so the platform does not redeliver

    async def replay(self, inbox: Inbox, body: bytes) -> str | None:
        """Process a spooled body again; messages already stored (same platform id) get no second reply."""
        return await self.process(inbox, self.items(json.loads(body)))

    async def process(self, inbox: Inbox, items: Sequence[Item]) -> str | None:
        """Hand every item to the engine (with retries); return what failed, None when all were handled."""
        errors: list[str] = []
        for item in items:
            what = f"{self.name}: {self.describe(item)}"
            try:
                async with self._in_order(item):
                    await with_retries(partial(self.handle, inbox, item), self._retry_delays, what)
            except Exception as exc:
                # The platform already has its 200; the body is in the spool, which replays it later.
                log.exception(
                    "%s not processed after %d attempts; its webhook is kept in the spool",
                    what,
                    len(self._retry_delays) + 1,
                )
                errors.append(f"{self.describe(item)}: {type(exc).__name__}: {exc}")
        return "; ".join(errors) or None

    async def drain(self) -> None:
        """Wait until every acknowledged webhook has been processed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Finish processing acknowledged webhooks (up to 10 s); what is cut off is replayed from the spool."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=10)
        for task in pending:
            log.error(
                "%s: stopping with a webhook still in processing; it is cancelled, and replayed "
                "from the spool by the next start",
                self.name,
            )
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _process_spooled(self, inbox: Inbox, spool_id: int, items: Sequence[Item]) -> None:
        error = await self.process(inbox, items)
        try:
            await inbox.spool.processed(spool_id, error)
        except Exception:  # the database is down: the body stays unprocessed and is replayed
            log.exception("%s: could not mark spooled webhook %d as processed", self.name, spool_id)

    @asynccontextmanager
    async def _in_order(self, item: Item) -> AsyncIterator[None]:
        """Hold the item's chat while it is handled: a later message of the chat waits for the earlier."""
        chat = item.chat_id if isinstance(item, IncomingMessage) else None
        if chat is None:
            yield
            return
        lock, users = self._chats.get(chat) or (asyncio.Lock(), 0)
        self._chats[chat] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._chats[chat]
            if users == 1:
                del self._chats[chat]
            else:
                self._chats[chat] = (lock, users - 1)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=f"{self.name}-webhook")
        self._tasks.add(task)  # a reference, so the task is not garbage-collected mid-flight
        task.add_done_callback(self._tasks.discard)
