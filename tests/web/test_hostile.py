"""Hostile input over real HTTP (issue 16): oversized bodies, leaked visitor ids, what past holders and the
event stream show, visitor-id rotation, forged answer ratings, Host-header redirects."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Customer, SpooledWebhook
from bot.web.app import create_app
from tests.support.handoff import Api, EventStream, desk_of, http_client, make_agent
from tests.support.paths import REPO
from tests.support.server import LiveServer, free_port
from tests.support.whatsapp import WEBHOOK, sign, text_webhook, whatsapp_settings

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # HTTP is what is tried here

VISITOR = "visitor-0123456789abcdef"


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped kb/delivery.yaml alone: these tests are about HTTP, and a small KB embeds fast."""
    folder = tmp_path_factory.mktemp("kb")
    shutil.copy(REPO / "kb" / "delivery.yaml", folder / "delivery.yaml")
    return folder


@pytest.fixture
async def service(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, small_kb: Path
) -> AsyncIterator[tuple[SupportBot, httpx.AsyncClient]]:
    """The web chat and the WhatsApp webhook served over a real socket (sends go nowhere)."""
    whatsapp = whatsapp_settings(f"http://127.0.0.1:{free_port()}").model_dump()
    settings = make_settings(
        kb={"path": str(small_kb)},
        server={"body_limits": {"/api/v1/webchat/": 4096, "/webhooks/whatsapp": 20_000}},
        channels={"whatsapp": whatsapp},
    )
    channels = [WebchatChannel(settings.channels.webchat), WhatsAppChannel(settings.channels.whatsapp)]
    bot = SupportBot(settings, channels=channels, encoder=encoder, database=database)
    await bot.start(progress=False)
    try:
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            yield bot, client
    finally:
        await desk_of(bot).close()
        bot.executor.shutdown(wait=False)


async def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (and `body`) on a fresh connection; return the status and what came back."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), timeout=10)
    except TimeoutError:
        return 0, b"no answer: the server waits for the body"
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer


async def count(bot: SupportBot, model: Any) -> int:
    async with bot.database.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# --- 1. request bodies over their route's limit ---------------------------------------------------------


async def test_bodies_over_the_route_limit_get_413_early_and_while_streaming(
    service: tuple[SupportBot, httpx.AsyncClient],
) -> None:
    bot, client = service
    url = str(client.base_url)
    # announced as 400 MB: refused from the header alone, before any of the body is sent
    status, answer = await raw_request(
        url,
        "POST /api/v1/webchat/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Visitor-Id: {VISITOR}\r\nContent-Length: 400000000",
    )
    assert status == 413 and b"body_too_large" in answer
    status, _ = await raw_request(
        url, f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20001"
    )
    assert status == 413

    # no length announced (chunked): counted as it streams, refused once past the limit
    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(total // 1000):
            yield b"a" * 1000
        yield b'"}'

    headers = {"X-Visitor-Id": VISITOR, "Content-Type": "application/json"}
    streamed = await client.post("/api/v1/webchat/messages", content=chunks(6000), headers=headers)
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["detail"]["code"] == "body_too_large"
    big = json.dumps(text_webhook("x" * 30_000, "wamid.big")).encode()

    async def webhook_chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    signed = {"X-Hub-Signature-256": sign(big), "Content-Type": "application/json"}
    assert (await client.post(WEBHOOK, content=webhook_chunks(), headers=signed)).status_code == 413
    assert (await client.post(WEBHOOK, content=big, headers=signed)).status_code == 413
    # the agent API and everything else: the default limit
    assert (await client.post("/api/v1/auth/login", content=b"x" * 1_100_000)).status_code == 413
    assert await count(bot, SpooledWebhook) == 0 and await count(bot, Customer) == 0

    # under the limits all is as before
    fine = await client.post("/api/v1/webchat/messages", json={"text": "hello"}, headers=headers)
    assert fine.status_code == 200, fine.text


async def visitor_says(
    client: httpx.AsyncClient, visitor: str, text: str = "", **extra: Any
) -> dict[str, Any]:
    posted = await client.post(
        "/api/v1/webchat/messages", json={"text": text, **extra}, headers={"X-Visitor-Id": visitor}
    )
    assert posted.status_code == 200, posted.text
    answer: dict[str, Any] = posted.json()
    return answer


async def conversation_of(client: httpx.AsyncClient, api: Api, state: str = "waiting") -> dict[str, Any]:
    [found] = await api.ok("GET", f"/conversations?state={state}")
    detail: dict[str, Any] = await api.ok("GET", f"/conversations/{found['id']}")
    return detail


# --- 3. the visitor id is the visitor's credential: agents see a reference ------------------------------


async def test_agents_never_see_the_web_chat_visitor_id(
    service: tuple[SupportBot, httpx.AsyncClient],
) -> None:
    bot, client = service
    await make_agent(bot.database, "anna")
    await make_agent(bot.database, "sue", role="supervisor")
    anna, sue = await Api.login(client, "anna"), await Api.login(client, "sue")
    async with EventStream(client, str(sue.token)) as stream:
        await visitor_says(client, VISITOR, "I want to talk to a human")
        await desk_of(bot).drain()
        queued = await stream.wait("queued")
        shown = []
        for api in (anna, sue):
            listed = await api.ok("GET", "/conversations?state=waiting")
            detail = await api.ok("GET", f"/conversations/{listed[0]['id']}")
            outputs = [
                listed,
                detail,
                await api.ok("GET", "/queue"),
                await api.ok("GET", f"/conversations/{detail['id']}/history"),
                await api.ok("GET", "/console/unread"),
            ]
            assert VISITOR not in json.dumps(outputs)
            shown += [listed[0]["customer"]["external_id"], detail["context"]["customer"]["external_id"]]
        assert VISITOR not in json.dumps(stream.events) and queued
    reference = shown[0]
    assert reference.startswith("visitor-") and shown == [reference] * 4  # stable, the same everywhere
    # the reference opens no chat: as a visitor id it is a stranger's, with nothing in it
    chat = await client.get("/api/v1/webchat/messages", headers={"X-Visitor-Id": reference})
    assert chat.status_code == 200 and chat.json()["messages"] == []
