"""The Host header is the client's word: redirects never repeat it, and `server.allowed_hosts` refuses others.

Starlette builds the URL of a redirect (e.g. `/agent/` -> `/agent`) from the request's Host header, so a
request with `Host: evil.example` was sent to `http://evil.example/agent`; a cache or a proxy that keeps
that answer hands the link to others. `RelativeRedirects` makes every redirect to this same site relative
(`/agent`), whatever Host said. With `server.allowed_hosts` set, a request naming any other host is refused
with 400 before a route sees it (Starlette's TrustedHostMiddleware; `*.example.com` patterns allowed).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RelativeRedirects:
    """Rewrite a redirect's `Location` to this site as a path (with its query), never an absolute URL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1")

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message["headers"] = [
                    (name, _relative(value, host) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative)


def _relative(location: bytes, host: str) -> bytes:
    url = urlsplit(location.decode("latin-1"))
    if not url.netloc or url.netloc != host:
        return location  # already relative, or to another site on purpose
    return urlunsplit(("", "", url.path or "/", url.query, url.fragment)).encode("latin-1")


def install_host_checks(app: FastAPI, allowed_hosts: list[str]) -> None:
    """Relative redirects always; with `allowed_hosts`, 400 for requests naming another host."""
    app.add_middleware(RelativeRedirects)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
