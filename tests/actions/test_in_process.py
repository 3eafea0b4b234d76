"""Custom actions run in-process by rasa-sdk's own ActionExecutor: tracker, slots, handoff, failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import SupportBot
from bot.config import Settings
from bot.engine import ACTION_FAILED, ACTION_HANDOFF
from bot.handoff.context import context_card
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Conversation, Event, Message
from tests.support.actions import SAMPLE_ACTIONS, actions_settings, started_bot
from tests.support.channel import RecordingChannel, incoming


@pytest.fixture
async def bot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, channel: RecordingChannel
) -> AsyncIterator[SupportBot]:
    settings = make_settings(
        **actions_settings(
            package=SAMPLE_ACTIONS, timeout_seconds=1, on_failure_by_action={"action_silent": "reply"}
        )
    )
    async with started_bot(settings, database, encoder, channel) as instance:
        yield instance


def said(bot_result: Any) -> list[str]:
    return [reply.text for _, reply in bot_result.replies]


async def press(bot: SupportBot, action: str, **kwargs: Any) -> Any:
    """The customer presses an action's button whose payload is "/action"."""
    return await bot.receive(incoming(payload=f"act:/{action}", **kwargs))


async def conversation_of(bot: SupportBot, conversation_id: int | None) -> Conversation:
    async with bot.database.session() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found


async def test_an_intent_mapped_to_an_action_answers_with_its_utterance_and_a_real_tracker(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    await bot.receive(
        incoming("Where is my order NW-48213? mail me at kasia@example.com", display_name="Kasia")
    )
    result = await bot.receive(incoming("hello", display_name="Kasia"))
    [text] = said(result)
    seen = json.loads(text)
    assert seen["sender_id"] == "test:c1" and seen["channel"] == "test"
    assert (
        seen["text"] == "hello" and seen["intent"]["name"] == "greet" and seen["intent"]["confidence"] > 0.5
    )
    assert seen["ranking"][0] == "greet"
    assert seen["slots"]["customer_name"] == "Kasia" and seen["slots"]["language"] == "en"
    assert seen["slots"]["channel"] == "test"
    assert [kind for kind, _ in seen["events"]] == ["user", "bot", "user"]  # earlier turns, then this one
    assert seen["events"][0][1].startswith("Where is my order")
    assert "action_show_tracker" in seen["domain_actions"]
    assert channel.sent[-1][1].text == text  # delivered on the customer's channel
    assert result.decision.label == "greet" and result.state == State.BOT
    async with bot.database.session() as session:
        stored = (await session.scalars(select(Message).where(Message.text == "hello"))).one()
    assert stored.decision is not None and stored.decision["action"] == "action_show_tracker"


async def test_the_tracker_carries_the_entities_the_normaliser_finds(bot: SupportBot) -> None:
    result = await bot.receive(incoming("hello, order NW-48213, phone +48 600 123 456, mail a.b@example.com"))
    seen = json.loads(said(result)[0])
    assert seen["entities"] == {"order_number": "48213", "phone": "+48600123456", "email": "a.b@example.com"}


async def test_slots_set_by_one_action_are_in_the_tracker_of_the_next(bot: SupportBot) -> None:
    remembered = await press(bot, "action_remember")
    assert said(remembered) == ["Noted: none"]  # a button press carries no text, so no order number
    assert (await conversation_of(bot, remembered.conversation_id)).slots == {"favourite_order": "none"}
    seen = json.loads(said(await bot.receive(incoming("hello")))[0])
    assert seen["slots"]["favourite_order"] == "none"

    restarted = await press(bot, "action_restart")
    assert said(restarted) == ["Starting over."]
    assert (await conversation_of(bot, restarted.conversation_id)).slots is None
    seen = json.loads(said(await bot.receive(incoming("hello")))[0])
    assert "favourite_order" not in seen["slots"]


async def test_a_followup_chain_runs_the_next_action_with_the_slots_set(bot: SupportBot) -> None:
    result = await press(bot, "action_chain")
    first, second = said(result)
    assert first == "first"
    seen = json.loads(second)
    assert seen["slots"]["step"] == "one"
    assert seen["events"][-1] == ["bot", "first"]


async def test_conversation_paused_hands_off_with_the_utterance_on_the_card(bot: SupportBot) -> None:
    result = await press(bot, "action_pause", display_name="Ola")
    utterance, queued = said(result)
    assert utterance == "This needs a colleague: refund 7731 is under review."
    assert queued.startswith(phrase("handoff", "en", position=1))
    assert result.state == State.WAITING and result.decision.reason == ACTION_HANDOFF
    async with bot.database.session() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
        card = await context_card(session, conversation)
        stored_card = conversation.handoff_context
    assert card["reason"] == ACTION_HANDOFF
    assert utterance in [turn["text"] for turn in card["transcript"]]
    assert (
        stored_card["action"]["utterances"] == [utterance] and stored_card["action"]["name"] == "action_pause"
    )


async def test_a_followup_to_the_handoff_action_hands_off(bot: SupportBot) -> None:
    result = await press(bot, "action_followup_handoff")
    assert said(result)[0] == "Passing you on." and result.state == State.WAITING


@pytest.mark.parametrize(
    ("action", "cause"),
    [("action_explode", "RuntimeError: the shop's database is on fire"), ("action_sleep", "within 1 s")],
)
async def test_an_exception_or_a_timeout_hands_off_with_reason_action_failed(
    bot: SupportBot, action: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    result = await press(bot, action)
    assert result.state == State.WAITING and result.decision.reason == ACTION_FAILED
    assert said(result)[0].startswith(phrase("handoff", "en", position=1))
    assert any(
        action in r.getMessage() and cause in r.getMessage() for r in caplog.records if r.levelname == "ERROR"
    )
    async with bot.database.session() as session:
        events = (await session.scalars(select(Event).where(Event.kind == "custom_action"))).all()
    assert events[-1].data["failure"] and cause in events[-1].data["failure"]


async def test_an_action_that_says_nothing_gets_a_reply_when_its_policy_is_reply(bot: SupportBot) -> None:
    result = await press(bot, "action_silent", language_hint="ru")
    [reply] = [r for _, r in result.replies]
    assert reply.text == phrase("action_failed", "ru") and reply.buttons[0].payload == "human"
    assert result.state == State.BOT


async def test_an_unknown_action_is_a_failure_not_an_error(bot: SupportBot) -> None:
    result = await press(bot, "action_nobody_wrote")
    assert result.state == State.WAITING and result.decision.reason == ACTION_FAILED


async def test_responses_in_the_customers_language_with_buttons_and_an_image(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    result = await press(bot, "action_languages", language_hint="ru")
    replies = [reply for _, reply in result.replies]
    assert [r.text for r in replies] == ["Возврат уже в пути.", "Что-нибудь ещё?"]
    buttons = replies[1].buttons
    assert [(b.title, b.payload) for b in buttons] == [
        ("Show tracker", "act:/action_show_tracker"),
        ("where is my order 12345", "act:where is my order 12345"),
        ("Person", "human"),
    ]
    assert replies[1].attachments[0].kind == "photo"
    assert replies[1].attachments[0].data == {"url": "https://shop.example/refund.png"}

    shown = await bot.receive(incoming(payload=buttons[0].payload))  # the button runs its action
    assert json.loads(said(shown)[0])["intent"]["name"] == "action_show_tracker"
    typed = await bot.receive(incoming(payload=buttons[1].payload))  # a text payload reads as typed
    assert typed.decision is not None and typed.decision.label == "order_status"
    person = await bot.receive(incoming(payload=buttons[2].payload))
    assert person.state == State.WAITING
