"""The web chat channel over real HTTP: replies, buttons, live events, replay, rate limit, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.messages import OutgoingReply
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Conversation, Message
from bot.storage.repositories import MessageRepository
from bot.web.app import create_app
from tests.support.handoff import Api, http_client, make_agent, wait_for, webchat_bot
from tests.support.server import LiveServer


def visitor() -> str:
    return f"v-{uuid.uuid4().hex}"


@pytest.fixture
async def webbot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> AsyncIterator[SupportBot]:
    """A started SupportBot with the web chat channel (limit 5 a minute, streams re-read every 0.2 s)."""
    settings = make_settings(
        channels={
            "webchat": {
                "rate_limit_per_minute": 5,
                "poll_seconds": 0.2,
                "allowed_origins": ["https://shop.example"],
            }
        }
    )
    async with webchat_bot(settings, database, encoder) as instance:
        yield instance


@contextlib.asynccontextmanager
async def served(bot: SupportBot) -> AsyncIterator[httpx.AsyncClient]:
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        yield client


class VisitorStream:
    """Reads /api/v1/webchat/events (visitor id in X-Visitor-Id; with legacy=True, in the path) in the
    background and keeps the events."""

    def __init__(
        self, client: httpx.AsyncClient, visitor_id: str, legacy: bool = False, **params: Any
    ) -> None:
        self.client = client
        self.headers: dict[str, str] = params.pop("headers", {})
        if legacy:
            self.url = f"/api/v1/webchat/{visitor_id}/events"
        else:
            self.url = "/api/v1/webchat/events"
            self.headers["X-Visitor-Id"] = visitor_id
        self.params = params
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []  # (event, id, data)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> VisitorStream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        async with self.client.stream(
            "GET", self.url, params=self.params, headers=self.headers, timeout=None
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            self._connected.set()
            kind, event_id, data = None, None, None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("id: "):
                    event_id = line[len("id: ") :]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: ") :])
                elif line == "" and kind and data is not None:
                    self.events.append((kind, event_id, data))
                    kind, event_id, data = None, None, None

    def messages(self) -> list[dict[str, Any]]:
        return [data for kind, _, data in self.events if kind == "message"]

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages()]

    def statuses(self) -> list[dict[str, Any]]:
        return [data for kind, _, data in self.events if kind == "status"]


async def post(client: httpx.AsyncClient, visitor_id: str, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/webchat/messages", json=body, headers={"X-Visitor-Id": visitor_id})


async def chat(client: httpx.AsyncClient, visitor_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/webchat/messages", params=params, headers={"X-Visitor-Id": visitor_id}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_post_answers_with_buttons_and_a_button_press_is_understood(webbot: SupportBot) -> None:
    you = visitor()
    async with served(webbot) as client:
        greeting = await post(client, you, payload="start", language="pl-PL")
        assert greeting.status_code == 200, greeting.text
        menu = greeting.json()["replies"][0]
        assert menu["sender"] == "bot" and len(menu["buttons"]) >= 3  # top topics + "talk to a person"
        assert menu["buttons"][-1]["payload"] == "human"

        asked = await post(client, you, text="How can I pay for my order?")
        body = asked.json()
        assert asked.status_code == 200 and body["state"] == "bot" and body["duplicate"] is False
        [answer] = body["replies"]
        assert "BLIK" in answer["text"] and answer["id"] > menu["id"]
        assert [b["payload"] for b in answer["buttons"]] == [
            "fb:up:payment_methods",
            "fb:down:payment_methods",
        ]
        assert body["last_id"] == answer["id"]

        voted = await post(client, you, text="👍", payload="fb:up:payment_methods")
        assert voted.status_code == 200 and voted.json()["replies"][0]["text"]

        # the stored chat, both directions, oldest first (what the widget restores on reload)
        stored = await chat(client, you)
        directions = [(m["direction"], m["sender"]) for m in stored["messages"]]
        assert directions[:4] == [("in", "customer"), ("out", "bot"), ("in", "customer"), ("out", "bot")]
        assert stored["messages"][2]["text"] == "How can I pay for my order?"
        later = await chat(client, you, after=answer["id"])
        assert later["messages"][0]["text"] == "👍"


async def test_agent_replies_and_queue_updates_arrive_live(webbot: SupportBot) -> None:
    you = visitor()
    await make_agent(webbot.database, "anna", name="Anna")
    async with served(webbot) as client:
        async with VisitorStream(client, you) as stream:
            await wait_for(lambda: stream.statuses(), what="the first status")
            assert stream.statuses()[0] == {"state": "bot", "queue_position": None, "agent": None}

            handed = (await post(client, you, text="I want to talk to a human")).json()
            assert handed["state"] == "waiting" and handed["queue_position"] == 1
            assert "number 1 in the queue" in handed["replies"][0]["text"]
            await wait_for(
                lambda: {"state": "waiting", "queue_position": 1, "agent": None} in stream.statuses(),
                what="waiting status",
            )
            # the immediate reply is streamed too (same id: the widget shows it once)
            await wait_for(lambda: handed["replies"][0]["id"] in [m["id"] for m in stream.messages()])

            anna = await Api.login(client, "anna")
            await anna.ok("PUT", "/agents/me/status", json={"status": "online"})
            await wait_for(lambda: "Anna from our team has joined the chat." in stream.texts(), what="joined")
            await wait_for(
                lambda: {"state": "with_agent", "queue_position": None, "agent": "Anna"} in stream.statuses()
            )
            [conversation] = await anna.ok("GET", "/conversations", params={"mine": "true"})
            await anna.ok(
                "POST", f"/conversations/{conversation['id']}/messages", json={"text": "Hi, Anna here."}
            )
            reply = await wait_for(
                lambda: next((m for m in stream.messages() if m["text"] == "Hi, Anna here."), None),
                what="the agent's reply",
            )
            assert reply["sender"] == "agent" and reply["agent"] == "Anna"
            event_ids = [event_id for kind, event_id, _ in stream.events if kind == "message"]
            assert event_ids == [str(m["id"]) for m in stream.messages()]  # EventSource resumes after these

            # while with the agent, the visitor's messages get no bot reply (they are for Anna)
            followup = (await post(client, you, text="Thanks! Can I pay by BLIK?")).json()
            assert followup["state"] == "with_agent" and followup["replies"] == []

            await anna.ok("POST", f"/conversations/{conversation['id']}/resolve", json={"reason": "done"})
            await wait_for(lambda: any("conversation is closed" in t for t in stream.texts()), what="closed")
            await wait_for(lambda: stream.statuses()[-1]["state"] == "resolved", what="resolved status")

        again = (await post(client, you, text="How can I pay for my order?")).json()
        assert again["state"] == "bot" and "BLIK" in again["replies"][0]["text"]


async def test_replies_sent_while_disconnected_are_replayed(webbot: SupportBot) -> None:
    you = visitor()
    async with served(webbot) as client:
        first = (await post(client, you, text="How can I pay for my order?")).json()
        seen = first["last_id"]
        # replies stored while no stream is connected (an agent, a queue update...)
        async with webbot.database.session() as session:
            conversation = (
                await session.execute(
                    Conversation.__table__.select().where(Conversation.channel == "webchat")
                )
            ).first()
            assert conversation is not None
            row = await session.get(Conversation, conversation.id)
            assert row is not None
            repo = MessageRepository(session)
            stored = [
                await repo.add_outbound(row, OutgoingReply(f"later {n}"), sender="system") for n in (1, 2)
            ]
            ids = [m.id for m in stored]
        await webbot.outbox.deliver()  # the web chat "delivers" by waking streams: nobody listens

        async with VisitorStream(client, you, since=seen) as stream:
            await wait_for(lambda: stream.texts() == ["later 1", "later 2"], what="replay after ?since=")
        # EventSource reconnecting sends Last-Event-ID: the stream resumes after it
        async with VisitorStream(client, you, since=seen, headers={"Last-Event-ID": str(ids[0])}) as stream:
            await wait_for(lambda: stream.texts() == ["later 2"], what="resume after Last-Event-ID")

        # a reply written by another process (no wake-up here) reaches an open stream by polling
        async with VisitorStream(client, you) as stream:
            await wait_for(lambda: stream.statuses(), what="connected")
            async with webbot.database.session() as session:
                row = await session.get(Conversation, conversation.id)
                assert row is not None
                other = await MessageRepository(session).add_outbound(row, OutgoingReply("from elsewhere"))
                other.status = "sent"
            await wait_for(lambda: "from elsewhere" in stream.texts(), within=5, what="picked up by polling")
            assert "later 1" not in stream.texts()  # without ?since=, only what comes next


async def test_rate_limit_is_per_visitor_and_nothing_is_stored_beyond_it(webbot: SupportBot) -> None:
    you, other = visitor(), visitor()
    async with served(webbot) as client:
        for n in range(5):
            response = await post(client, you, text=f"hello {n}")
            assert response.status_code == 200, response.text
        limited = await post(client, you, text="one too many")
        assert limited.status_code == 429
        assert limited.json()["detail"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert (await post(client, other, text="hello")).status_code == 200  # another visitor is not affected
    async with webbot.database.session() as session:
        texts = [m.text for m in (await session.execute(Message.__table__.select())).all()]
    assert "one too many" not in texts and "hello 4" in texts


async def test_old_clients_with_the_visitor_id_in_the_path_still_work(webbot: SupportBot) -> None:
    you = visitor()
    async with served(webbot) as client:
        posted = await client.post(f"/api/v1/webchat/{you}/messages", json={"text": "How can I pay?"})
        assert posted.status_code == 200 and "BLIK" in posted.json()["replies"][0]["text"]
        # the same chat, whichever way the id travels
        old = (await client.get(f"/api/v1/webchat/{you}/messages")).json()
        assert old["messages"] == (await chat(client, you))["messages"]
        async with VisitorStream(client, you, legacy=True, since=0) as stream:
            await wait_for(lambda: any("BLIK" in t for t in stream.texts()), what="the legacy stream")
        schema = (await client.get("/openapi.json")).json()["paths"]
        assert schema["/api/v1/webchat/{visitor_id}/messages"]["post"]["deprecated"] is True
        assert "deprecated" not in schema["/api/v1/webchat/messages"]["post"]


async def test_bad_input_gets_a_clear_answer(webbot: SupportBot) -> None:
    async with served(webbot) as client:
        short = await post(client, "abc", text="hi")
        assert short.status_code == 422 and short.json()["detail"]["code"] == "invalid_visitor_id"
        assert "X-Visitor-Id" in short.json()["detail"]["message"]
        missing = await client.post("/api/v1/webchat/messages", json={"text": "hi"})
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "invalid_visitor_id"
        for path in ("/api/v1/webchat/messages", "/api/v1/webchat/events"):
            unnamed = await client.get(path)
            assert unnamed.status_code == 422 and unnamed.json()["detail"]["code"] == "invalid_visitor_id"
        old_short = await client.post("/api/v1/webchat/abc/messages", json={"text": "hi"})
        assert old_short.status_code == 422 and old_short.json()["detail"]["code"] == "invalid_visitor_id"
        bad_chars = await client.get("/api/v1/webchat/<script>alert(1)</script>aaaaaaaa/events")
        assert bad_chars.status_code in (404, 422)
        empty = await post(client, visitor(), text="   ")
        assert empty.status_code == 422 and empty.json()["detail"]["code"] == "empty_message"
        long = await post(client, visitor(), text="x" * 8001)
        assert long.status_code == 422
        not_json = await client.post(
            "/api/v1/webchat/messages", content=b"hello", headers={"X-Visitor-Id": visitor()}
        )
        assert not_json.status_code == 422


async def test_a_resent_message_is_answered_once(webbot: SupportBot) -> None:
    you = visitor()
    async with served(webbot) as client:
        first = await post(client, you, text="How can I pay for my order?", client_message_id="m-1")
        again = await post(client, you, text="How can I pay for my order?", client_message_id="m-1")
    assert first.json()["replies"] and again.json() | {"last_id": 0} == {
        "state": "bot",
        "queue_position": None,
        "agent": None,
        "duplicate": True,
        "replies": [],
        "last_id": 0,
    }


async def test_cors_only_for_configured_origins(webbot: SupportBot) -> None:
    you = visitor()
    async with served(webbot) as client:
        for path in ("/api/v1/webchat/messages", "/api/v1/webchat/events", f"/api/v1/webchat/{you}/messages"):
            preflight = await client.options(
                path,
                headers={
                    "Origin": "https://shop.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type, x-visitor-id",
                },
            )
            assert preflight.status_code == 204, path
            assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
            assert "X-Visitor-Id" in preflight.headers["access-control-allow-headers"]
        allowed = await client.post(
            "/api/v1/webchat/messages",
            json={"text": "hi"},
            headers={"Origin": "https://shop.example", "X-Visitor-Id": you},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert allowed.headers["access-control-expose-headers"] == "Retry-After"  # the widget reads it
        foreign = await client.post(
            "/api/v1/webchat/messages",
            json={"text": "hi"},
            headers={"Origin": "https://evil.example", "X-Visitor-Id": you},
        )
        assert "access-control-allow-origin" not in foreign.headers


async def test_webchat_is_enabled_by_configuration(make_settings: Callable[..., Settings]) -> None:
    from bot.adapters.registry import enabled_channels

    assert [c.name for c in enabled_channels(make_settings())] == ["webchat"]
    assert enabled_channels(make_settings(channels={"webchat": {"enabled": False}})) == []


async def test_numbers_no_message_can_have_get_a_clear_answer(webbot: SupportBot) -> None:
    # Found by fuzzing: ?after= beyond what the database stores, or a Last-Event-ID of digits int() refuses
    # ("²"), came back 500
    you = visitor()
    async with served(webbot) as client:
        assert (await post(client, you, text="How can I pay?")).status_code == 200
        for huge in (str(2**31), "99999999999999999999999"):
            response = await client.get(
                "/api/v1/webchat/messages", params={"after": huge}, headers={"X-Visitor-Id": you}
            )
            assert response.status_code == 422 and response.json()["detail"][0]["type"] == "less_than_equal"
            response = await client.get(
                "/api/v1/webchat/events", params={"since": huge}, headers={"X-Visitor-Id": you}
            )
            assert response.status_code == 422
        for last_event_id in ("99999999999999999999999", "²".encode("latin-1")):
            async with VisitorStream(
                client, you, headers={"Last-Event-ID": last_event_id}, since=0
            ) as stream:
                await wait_for(lambda: any("BLIK" in t for t in stream.texts()), what="the replayed answer")


async def test_a_lone_surrogate_is_repaired_not_refused(webbot: SupportBot) -> None:
    # "\ud800" is valid JSON but no Unicode text: it was a 500, then a 422; now it is repaired (U+FFFD) and
    # the message answered like any other (issue 16; IncomingMessage and WebchatIn repair it)
    async with served(webbot) as client:
        response = await client.post(
            "/api/v1/webchat/messages",
            content=b'{"text": "\\ud800 lone"}',
            headers={"X-Visitor-Id": visitor(), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["replies"]
        chat = await client.get(
            "/api/v1/webchat/messages", headers={"X-Visitor-Id": response.request.headers["X-Visitor-Id"]}
        )
        assert chat.json()["messages"][0]["text"] == "\ufffd lone"
