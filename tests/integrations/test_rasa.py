"""The Rasa-side actions (bot/integrations/rasa.py) against a running supportbot, over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.version import __version__ as rasa_sdk_version
from sqlalchemy import select

from bot.app import SupportBot
from bot.config import Settings
from bot.handoff.context import context_card
from bot.integrations.rasa import ActionSupportbotFaq, ActionSupportbotHandoff
from bot.integrations.rasa_api import CHANNEL
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Conversation
from bot.web.app import create_app
from tests.support.actions import started_bot
from tests.support.channel import RecordingChannel
from tests.support.handoff import desk_of, make_agent
from tests.support.server import LiveServer

TOKEN = "rasa-shared-secret"


@pytest.fixture
async def supportbot(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[SupportBot, str]]:
    """A running supportbot with /api/v1/rasa on, and the Rasa action server's environment pointing at it."""
    settings = make_settings(rasa={"api_token": TOKEN}, actions={"package": None})
    async with started_bot(settings, database, encoder, channel) as bot:
        async with LiveServer(create_app(bot, start=False)) as server:
            monkeypatch.setenv("SUPPORTBOT_URL", server.url)
            monkeypatch.setenv("SUPPORTBOT_RASA_TOKEN", TOKEN)
            yield bot, server.url


def rasa_call(action: str, text: str, slots: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook request a Rasa assistant sends its action server for `action`."""
    latest = {"text": text, "intent": {"name": "faq", "confidence": 0.9}, "entities": []}
    return {
        "next_action": action,
        "sender_id": "rasa-user-42",
        "tracker": {"sender_id": "rasa-user-42", "slots": slots, "latest_message": latest, "events": events},
        "domain": {"slots": {name: {"type": "any"} for name in slots}, "actions": [action]},
        "version": rasa_sdk_version,
    }


async def run(action: str, text: str, slots: dict[str, Any], events: list[dict[str, Any]] = []) -> Any:  # noqa: B006
    executor = ActionExecutor()  # rasa-sdk's own, as in the Rasa project's action server
    executor.register_action(ActionSupportbotFaq)
    executor.register_action(ActionSupportbotHandoff)
    return await executor.run(rasa_call(action, text, slots, events))


async def test_faq_answers_from_the_kb_in_the_trackers_language(supportbot: tuple[SupportBot, str]) -> None:
    bot, _ = supportbot
    result = await run(
        "action_supportbot_faq", "how long does delivery take", {"language": "ru", "supportbot_entry": None}
    )
    assert [r["text"] for r in result.responses] == [bot.matcher().kb.get("delivery_time").answer["ru"]]  # type: ignore[union-attr]
    assert result.events == [
        {"event": "slot", "timestamp": None, "name": "supportbot_entry", "value": "delivery_time"}
    ]


async def test_faq_without_a_confident_answer_hands_back_to_rasas_fallback(
    supportbot: tuple[SupportBot, str],
) -> None:
    result = await run("action_supportbot_faq", "what will the weather be in Paris tomorrow", {})
    assert result.responses == []
    assert result.events == [{"event": "followup", "timestamp": None, "name": "action_default_fallback"}]


async def test_handoff_queues_the_conversation_with_the_rasa_transcript(
    supportbot: tuple[SupportBot, str],
) -> None:
    bot, url = supportbot
    anna = await make_agent(bot.database, "anna", name="Anna", languages=["en"])
    now = time.time()
    events = [
        {"event": "action", "name": "action_listen", "timestamp": now - 60},
        {"event": "user", "text": "my parcel is damaged", "timestamp": now - 50},
        {"event": "bot", "text": "Sorry to hear that! Do you have a photo?", "timestamp": now - 40},
        {"event": "user", "text": "I want to talk to a person", "timestamp": now - 30},
    ]
    slots = {"language": "en", "customer_name": "Jan"}
    result = await run("action_supportbot_handoff", "I want to talk to a person", slots, events)
    [told] = [r["text"] for r in result.responses]
    assert told.startswith(phrase("handoff", "en", position=1))
    assert result.events == [{"event": "pause", "timestamp": None}]

    desk = desk_of(bot)
    async with bot.database.session() as session:
        [conversation] = (await session.scalars(select(Conversation))).all()
        assert conversation.channel == CHANNEL and conversation.state == State.WAITING
        card = await context_card(session, conversation)
    assert card["reason"] == "rasa_handoff" and card["customer"]["name"] == "Jan"
    assert [(t["sender"], t["text"]) for t in card["transcript"]][:4] == [
        ("customer", "my parcel is damaged"),
        ("bot", "Sorry to hear that! Do you have a photo?"),
        ("customer", "I want to talk to a person"),
        ("bot", told),
    ]

    await desk.moves.accept(conversation.id, anna.id)
    await desk.moves.reply(conversation.id, anna.id, "Hi Jan, Anna here. Send me the photo, please.")
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        chat = (await client.get("/api/v1/rasa/messages", params={"sender_id": "rasa-user-42"})).json()
    assert "Hi Jan, Anna here. Send me the photo, please." in [m["text"] for m in chat["messages"]]

    again = await run(
        "action_supportbot_handoff", "I want to talk to a person", slots, events
    )  # idempotent history
    async with bot.database.session() as session:
        card = await context_card(session, conversation)
    assert [t["text"] for t in card["transcript"]].count("my parcel is damaged") == 1
    assert again.events == [{"event": "pause", "timestamp": None}]


async def test_the_rasa_api_wants_its_token(
    supportbot: tuple[SupportBot, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = supportbot
    async with httpx.AsyncClient(base_url=url) as client:
        refused = await client.post(
            "/api/v1/rasa/answer", json={"text": "hi"}, headers={"Authorization": "Bearer nope"}
        )
    assert refused.status_code == 401
    monkeypatch.setenv("SUPPORTBOT_RASA_TOKEN", "wrong")
    result = await run("action_supportbot_faq", "how long does delivery take", {})
    assert result.events == [{"event": "followup", "timestamp": None, "name": "action_default_fallback"}]
