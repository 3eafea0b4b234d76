"""Custom actions on a real rasa-sdk action server process, and every way one can fail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bot.adapters.webchat import WebchatChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.engine import ACTION_FAILED, ACTION_HANDOFF
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.actions import actions_settings, broken_action_server, rasa_action_server, started_bot
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import http_client
from tests.support.server import LiveServer, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def action_server() -> Iterator[str]:
    """`python -m rasa_sdk --actions tests.support.sample_actions`, once for the module."""
    with rasa_action_server() as url:
        yield url


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(url: str, **actions: Any) -> Settings:
        return make_settings(**actions_settings(url=url, timeout_seconds=2, **actions))

    return factory


@pytest.fixture
async def served_bot(
    settings_for: Callable[..., Settings],
    action_server: str,
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
) -> AsyncIterator[SupportBot]:
    async with started_bot(settings_for(action_server), database, encoder, channel) as bot:
        yield bot


def said(result: Any) -> list[str]:
    return [reply.text for _, reply in result.replies]


async def test_an_intent_mapped_to_an_action_is_answered_by_the_action_server(served_bot: SupportBot) -> None:
    await served_bot.receive(incoming(payload="act:/action_remember"))
    seen = json.loads(said(await served_bot.receive(incoming("hello")))[0])
    assert seen["intent"]["name"] == "greet" and seen["sender_id"] == "test:c1"
    assert seen["slots"]["favourite_order"] == "none"  # set by the previous action, on the server too
    assert [kind for kind, _ in seen["events"]] == ["user", "bot", "user"]


async def test_the_demo_order_status_on_the_server_in_russian(served_bot: SupportBot) -> None:
    result = await served_bot.receive(incoming("gde moi zakaz 12345"))
    [text] = said(result)
    assert text.startswith("Заказ NW-12345") and "Отправлен" in text
    asked = await served_bot.receive(incoming("gde moi zakaz 99999"))
    assert said(asked) == [
        "Не нахожу заказ 99999. Проверьте, пожалуйста, номер и пришлите его ещё раз (например, NW-12345)."
    ]
    answered = await served_bot.receive(incoming("NW-49102"))  # the action asked for it: it gets it
    assert "Упакован" in said(answered)[0]


async def test_conversation_paused_on_the_server_hands_off(served_bot: SupportBot) -> None:
    result = await served_bot.receive(incoming(payload="act:/action_pause"))
    assert result.state == State.WAITING and result.decision.reason == ACTION_HANDOFF
    assert said(result)[0] == "This needs a colleague: refund 7731 is under review."


@pytest.mark.parametrize(
    ("action", "cause"),
    [
        ("action_explode", "HTTP 500: the shop's database is on fire"),
        ("action_sleep", "within 2 s"),
        ("action_missing", "has no action 'action_missing'"),
    ],
)
async def test_an_exception_a_timeout_or_a_missing_action_on_the_server_hands_off(
    served_bot: SupportBot, action: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    result = await served_bot.receive(incoming(payload=f"act:/{action}"))
    assert result.state == State.WAITING and result.decision.reason == ACTION_FAILED
    assert said(result)[0].startswith(phrase("handoff", "en", position=1))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(action in line and cause in line for line in errors), errors


async def test_a_server_that_is_down_hands_off_or_answers_with_the_entrys_text(
    settings_for: Callable[..., Settings], database: Database, encoder: E5Encoder, channel: RecordingChannel
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/webhook"
    async with started_bot(settings_for(nowhere), database, encoder, channel) as bot:
        result = await bot.receive(incoming("gde moi zakaz 12345"))
        assert result.state == State.WAITING and result.decision.reason == ACTION_FAILED
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            health = (await client.get("/healthz")).json()
        assert health["actions"]["where"] == nowhere
        assert health["actions"]["status"].startswith("unreachable")

    policy = settings_for(nowhere, on_failure_by_action={"action_order_status": "reply"})
    async with started_bot(policy, database, encoder, channel) as bot:
        result = await bot.receive(incoming("gde moi zakaz 12345", customer="c2"))
        [reply] = [reply for _, reply in result.replies]
        entry = bot.matcher().kb.get("order_status")
        assert entry is not None and reply.text == entry.answer["ru"]  # the entry's own text, as a fallback
        assert result.state == State.BOT


@pytest.mark.parametrize("answer", ["not json", "wrong shape", "500"])
async def test_a_malformed_answer_hands_off_never_silence(
    answer: str,
    settings_for: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with LiveServer(broken_action_server(answer)) as broken:
        async with started_bot(settings_for(f"{broken.url}/webhook"), database, encoder, channel) as bot:
            result = await bot.receive(incoming("hello"))
    assert result.state == State.WAITING and result.decision.reason == ACTION_FAILED
    assert channel.sent and channel.sent[-1][1].text.startswith(phrase("handoff", "en", position=1))
    assert any("action_show_tracker" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_web_chat_visitors_get_the_actions_answer_and_healthz_sees_the_server(
    settings_for: Callable[..., Settings], action_server: str, database: Database, encoder: E5Encoder
) -> None:
    settings = settings_for(action_server)
    webchat = WebchatChannel(settings.channels.webchat)
    async with (
        started_bot(settings, database, encoder, webchat) as bot,
        LiveServer(create_app(bot, start=False)) as server,
        http_client(server.url) as client,
    ):
        response = await client.post(
            "/api/v1/webchat/messages",
            json={"text": "hello"},
            headers={"X-Visitor-Id": "v-actions-0123456789"},
        )
        assert response.status_code == 200, response.text
        [reply] = response.json()["replies"]
        seen = json.loads(reply["text"])
        assert seen["channel"] == "webchat" and seen["sender_id"] == "webchat:v-actions-0123456789"
        health = (await client.get("/healthz")).json()
    assert health["actions"] == {"where": action_server, "status": "ok"}
