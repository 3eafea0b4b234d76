"""Request-body size limits for every route: 413 from Content-Length before a byte is read, and from the
streamed byte count while the body arrives, whatever route reads it.

An ASGI middleware in front of the whole app, so a route cannot forget it: the limit of a request is the
one of the longest `server.body_limits` prefix its path starts with, else `server.max_body_bytes`. A body
announced as larger is refused at once (the connection's bytes are never read into memory); a body sent
without a length (chunked) is counted as it streams in, and the read that passes the limit raises a 413
to the route, which answers it, or, when the route has already answered, ends the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CODE = "body_too_large"


def _message(limit: int) -> str:
    return f"the request body is larger than this route takes ({limit} bytes at most)"


class BodyTooLarge(HTTPException):
    """Raised to the route by the read that passes its limit; answered as 413 in the API's shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail={"code": CODE, "message": _message(limit)})


class BodyLimits:
    """The limit of each path: the longest matching prefix of `per_prefix`, else `default`."""

    def __init__(self, default: int, per_prefix: Mapping[str, int]) -> None:
        self.default = default
        self._prefixes = sorted(per_prefix.items(), key=lambda item: len(item[0]), reverse=True)

    def of(self, path: str) -> int:
        for prefix, limit in self._prefixes:
            if path.startswith(prefix):
                return limit
        return self.default


class BodyLimitMiddleware:
    """Refuse request bodies over their route's limit with 413 (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.of(scope["path"])
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await _refuse(send, limit)
            return
        received = 0
        answered = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # read outside the route (a middleware); the route's own reads answer it themselves
            if answered:
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": {"code": CODE, "message": _message(limit)}}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is not read: the connection cannot be reused
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
