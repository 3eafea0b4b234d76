"""Hostile input over real HTTP (issue 16): oversized bodies, leaked visitor ids, what past holders and the
event stream show, visitor-id rotation, forged answer ratings, Host-header redirects."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings, WebchatSettings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Assignment, Customer, Event, SpooledWebhook, utcnow
from bot.web.app import create_app
from tests.support.handoff import Api, EventStream, desk_of, http_client, make_agent, webchat_bot
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


# --- 4. past holders read for a while, never write; the stream keeps others' reasons to itself ----------


async def test_past_holders_read_for_a_while_and_never_write(
    service: tuple[SupportBot, httpx.AsyncClient],
) -> None:
    bot, client = service
    await make_agent(bot.database, "anna", status="online")
    await make_agent(bot.database, "bob")
    await make_agent(bot.database, "carol")
    await make_agent(bot.database, "sue", role="supervisor")
    anna, bob, carol, sue = [await Api.login(client, login) for login in ("anna", "bob", "carol", "sue")]
    async with EventStream(client, str(carol.token)) as carols, EventStream(client, str(sue.token)) as sues:
        await visitor_says(client, VISITOR, "I want to talk to a human")
        await desk_of(bot).drain()
        [held] = await anna.ok("GET", "/conversations?mine=true")
        cid = held["id"]
        await bob.ok("PUT", "/agents/me/status", json={"status": "online"})
        secret = "customer's IBAN PL61109010140000071219812874"
        await anna.ok("POST", f"/conversations/{cid}/transfer", json={"agent_login": "bob", "reason": secret})

        # anna held it: she may read it for a while, but no longer write to it, notes included
        assert (await anna.call("GET", f"/conversations/{cid}")).status_code == 200
        assert (await anna.call("GET", f"/conversations/{cid}/history")).status_code == 200
        refused = await anna.call("POST", f"/conversations/{cid}/notes", json={"text": "still mine"})
        assert refused.status_code == 403, refused.text
        assert (await carol.call("GET", f"/conversations/{cid}")).status_code == 403
        await bob.ok("POST", f"/conversations/{cid}/notes", json={"text": "bob's note"})
        await bob.ok("POST", f"/conversations/{cid}/resolve", json={"reason": f"refunded to {secret}"})
        await sues.wait("resolved", conversation_id=cid)
        await carols.wait("resolved", conversation_id=cid)
        # the supervisor's stream has the reasons; carol's (who may not open it) has the events only
        assert secret in json.dumps(sues.events)
        assert secret not in json.dumps(carols.events), carols.events

    async with bot.database.session() as session:  # a day and a bit later: anna's reading is over
        await session.execute(
            update(Assignment)
            .where(Assignment.conversation_id == cid)
            .values(ended_at=utcnow() - timedelta(hours=25))
        )
    assert (await anna.call("GET", f"/conversations/{cid}")).status_code == 403
    assert (await bob.call("GET", f"/conversations/{cid}")).status_code == 403
    assert (await sue.call("GET", f"/conversations/{cid}")).status_code == 200


# --- 5. rotating visitor ids: new ones are counted per client address ------------------------------------


async def test_new_visitor_ids_are_limited_per_address(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, small_kb: Path
) -> None:
    assert WebchatSettings().new_visitors_per_address_per_hour > 0  # on by default
    settings = make_settings(
        kb={"path": str(small_kb)}, channels={"webchat": {"new_visitors_per_address_per_hour": 3}}
    )
    async with (
        webchat_bot(settings, database, encoder) as bot,
        LiveServer(create_app(bot, start=False)) as server,
        http_client(server.url) as client,
    ):
        visitors = [f"rotating-visitor-{n:04d}" for n in range(5)]
        for visitor in visitors[:3]:
            await visitor_says(client, visitor, "How long is delivery?")
        for visitor in visitors[3:]:
            refused = await client.post(
                "/api/v1/webchat/messages", json={"text": "hi"}, headers={"X-Visitor-Id": visitor}
            )
            assert refused.status_code == 429, refused.text
            assert (
                refused.json()["detail"]["code"] == "rate_limited"
                and int(refused.headers["Retry-After"]) > 60
            )
        # visitors who wrote before go on as ever; nothing was stored for the refused ones
        await visitor_says(client, visitors[0], "And to Poland?")
        assert await count(bot, Customer) == 3


# --- 9. the Host header never makes a redirect; allowed_hosts refuses strangers --------------------------


async def test_redirects_are_relative_and_other_hosts_can_be_refused(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, small_kb: Path
) -> None:
    settings = make_settings(kb={"path": str(small_kb)})
    async with webchat_bot(settings, database, encoder) as bot:
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            moved = await client.get("/agent/", headers={"Host": "evil.example"})
            assert moved.status_code == 307 and moved.headers["location"] == "/agent"
        bot.settings.server.allowed_hosts = ["support.example.com"]
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            assert (await client.get("/agent/", headers={"Host": "evil.example"})).status_code == 400
            served = await client.get("/agent", headers={"Host": "support.example.com"})
            assert served.status_code == 200


# --- 8. answer ratings: one vote per answer actually sent in that conversation ----------------------------


async def feedback_votes(bot: SupportBot) -> list[tuple[str, str]]:
    async with bot.database.session() as session:
        rows = await session.execute(select(Event.data).where(Event.kind == "answer_feedback"))
        return sorted((data["vote"], data["entry"]) for data in rows.scalars())


async def test_votes_count_only_for_answers_sent_in_the_conversation_once_each(
    service: tuple[SupportBot, httpx.AsyncClient],
) -> None:
    bot, client = service
    answered = await visitor_says(client, VISITOR, "How long does delivery take?")
    [reply] = answered["replies"]
    vote_up, vote_down = (button["payload"] for button in reply["buttons"])
    entry = vote_up.rsplit(":", 1)[1]
    assert vote_up == f"fb:up:{entry}" and vote_down == f"fb:down:{entry}"
    await visitor_says(client, VISITOR, "👍", payload=vote_up)
    await visitor_says(client, VISITOR, "👎", payload=vote_down)  # the same answer, rated again
    await visitor_says(client, VISITOR, "👎", payload="fb:down:store_locations")  # never sent to them
    stranger = "stranger-0123456789abcdef"
    for _ in range(5):  # a visitor who never got the answer
        await visitor_says(client, stranger, "👎", payload=vote_down)
    assert await feedback_votes(bot) == [("up", entry)]
