"""Helpers for the live-agent tests: agents, an API client over real HTTP, an SSE reader, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import httpx

from bot.adapters.webchat import WebchatChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.handoff.agents import AgentRepository
from bot.handoff.live import LiveHandoff
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Agent

PASSWORD = "correct horse battery"


def desk_of(bot: SupportBot) -> LiveHandoff:
    """The bot's live desk: what a SupportBot built without a handoff of its own runs."""
    return cast(LiveHandoff, bot.handoff)


@contextlib.asynccontextmanager
async def webchat_bot(
    settings: Settings, database: Database, encoder: E5Encoder
) -> AsyncIterator[SupportBot]:
    """A started SupportBot with the web chat channel; its desk's background work ends with the block."""
    instance = SupportBot(
        settings, channels=[WebchatChannel(settings.channels.webchat)], encoder=encoder, database=database
    )
    await instance.start(progress=False)
    try:
        yield instance
    finally:
        await desk_of(instance).close()
        instance.executor.shutdown(wait=False)


async def make_agent(
    database: Database,
    login: str,
    *,
    name: str | None = None,
    capacity: int = 3,
    languages: Iterable[str] = (),
    role: str = "agent",
    status: str | None = None,
) -> Agent:
    """Create an agent (optionally with a status set directly, without triggering assignment)."""
    async with database.session() as session:
        agent = await AgentRepository(session).create(
            login, PASSWORD, name or login.title(), role, list(languages), capacity
        )
        if status is not None:
            agent.status = status
        await session.flush()
        return agent


async def wait_for(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], within: float = 10.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


class Api:
    """The agent API over a real socket, logged in as one agent."""

    def __init__(self, client: httpx.AsyncClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    @classmethod
    async def login(cls, client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> Api:
        response = await client.post("/api/v1/auth/login", json={"login": login, "password": password})
        assert response.status_code == 200, response.text
        return cls(client, response.json()["token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code in (200, 201, 204), (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None


class EventStream:
    """Reads /api/v1/events (Server-Sent Events) in the background and keeps what arrived."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> EventStream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.client.stream("GET", "/api/v1/events", headers=headers, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            self._connected.set()
            kind, data = None, None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: ") :])
                elif line == "" and kind and data is not None:
                    self.events.append(data)
                    kind, data = None, None

    async def wait(self, kind: str, within: float = 10.0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events:
                if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event
            return None

        result: dict[str, Any] = await wait_for(found, within, f"event {kind} {match}")
        return result

    def kinds(self) -> list[str]:
        return [event["kind"] for event in self.events]


@contextlib.asynccontextmanager
async def http_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client
