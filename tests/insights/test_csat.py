"""CSAT after a resolved chat: the question, the rating stored once and in time, the numbers, the web chat."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.adapters.webchat import WebchatChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.storage.database import Database
from bot.storage.models import Conversation, Event, utcnow
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, desk_of, http_client, make_agent, wait_for
from tests.support.server import LiveServer


def sent_texts(channel: RecordingChannel) -> list[str]:
    return [reply.text for _, reply in channel.sent]


async def _handed_off(bot: SupportBot, customer: str, text: str, **kwargs: Any) -> int:
    result = await bot.receive(incoming(text, customer=customer, **kwargs))
    assert result.state == "waiting" and result.conversation_id is not None
    return result.conversation_id


async def _served_and_resolved(agent: Api, conversation_id: int) -> None:
    await agent.ok("POST", f"/conversations/{conversation_id}/accept")
    await agent.ok(
        "POST", f"/conversations/{conversation_id}/messages", json={"text": "Done, anything else?"}
    )
    await agent.ok("POST", f"/conversations/{conversation_id}/resolve", json={"reason": "answered"})


async def _conversations_of(bot: SupportBot) -> int:
    async with bot.database.session() as session:
        return int((await session.execute(select(func.count()).select_from(Conversation))).scalar_one())


async def test_customer_rates_a_resolved_chat_once(bot: SupportBot, channel: RecordingChannel) -> None:
    await make_agent(bot.database, "anna", name="Anna")
    await make_agent(bot.database, "ben", name="Ben")
    await make_agent(bot.database, "sup", role="supervisor")
    x = await _handed_off(bot, "x", "I want to talk to a human")
    y = await _handed_off(bot, "y", "Соедините меня с оператором, пожалуйста", language_hint="ru")
    z = await _handed_off(bot, "z", "operator please, I want a person")
    await desk_of(bot).drain()
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, ben = await Api.login(client, "anna"), await Api.login(client, "ben")
        await _served_and_resolved(anna, x)
        await _served_and_resolved(ben, y)
        await _served_and_resolved(ben, z)

        # after "closed", the question with three buttons naming the conversation, in the customer's language
        def question_to(conversation_id: int) -> Any:
            return next(
                (
                    reply
                    for target, reply in channel.sent
                    if target.conversation_id == conversation_id
                    and any(b.payload.startswith("csat:") for b in reply.buttons)
                ),
                None,
            )

        english = await wait_for(lambda: question_to(x), what="the rating question")
        assert english.text == "How did we do? Please rate this conversation."
        assert [(b.title, b.payload) for b in english.buttons] == [
            ("😞 Bad", f"csat:{x}:1"),
            ("😐 OK", f"csat:{x}:2"),
            ("😀 Great", f"csat:{x}:3"),
        ]
        russian = await wait_for(lambda: question_to(y), what="the Russian rating question")
        assert russian.text.startswith("Как мы справились?")
        assert [b.title for b in russian.buttons] == ["😞 Плохо", "😐 Нормально", "😀 Отлично"]
        before = await _conversations_of(bot)

        # x rates 3, then presses again: counted once; no new conversation starts
        rated = await bot.receive(incoming(payload=f"csat:{x}:3", text="😀 Great", customer="x"))
        assert rated.conversation_id == x and rated.state == "resolved"
        assert [reply.text for _, reply in rated.replies] == ["Thank you for your rating!"]
        again = await bot.receive(incoming(payload=f"csat:{x}:1", text="😞 Bad", customer="x"))
        assert [reply.text for _, reply in again.replies] == [
            "You have already rated this conversation. Thank you!"
        ]
        # z rates 2 in time; y presses 1 a day and more after the resolution: not counted
        await bot.receive(incoming(payload=f"csat:{z}:2", customer="z"))
        async with bot.database.session() as session:
            closed = await session.get(Conversation, y)
            assert closed is not None and closed.resolved_at is not None
            closed.resolved_at = closed.resolved_at - timedelta(hours=25)
        expired = await bot.receive(incoming(payload=f"csat:{y}:1", customer="y"))
        assert expired.replies[0][1].text.startswith("Спасибо! Этот разговор уже нельзя оценить")
        # w presses a rating of x's conversation: not w's to rate, an unknown button
        forged = await bot.receive(incoming(payload=f"csat:{x}:1", customer="w"))
        assert forged.conversation_id != x and forged.state == "bot"
        assert await _conversations_of(bot) == before + 1  # w's own new conversation, no other

        async with bot.database.session() as session:
            events = (await session.execute(select(Event).where(Event.kind == "csat"))).scalars().all()
        assert sorted((e.conversation_id, e.data["score"], e.data["agent"]) for e in events) == [
            (x, 3, "anna"),
            (z, 2, "ben"),
        ]
        sup = await Api.login(client, "sup")
        stats = await sup.ok("GET", "/stats", params={"days": 1})
    assert stats["csat"] == {
        "count": 2,
        "average": 2.5,
        "satisfied_share": 0.5,
        "scores": {"1": 0, "2": 1, "3": 1},
    }
    assert [(a["login"], a["resolved"], a["csat_count"], a["csat_average"]) for a in stats["agents"]] == [
        ("anna", 1, 1, 3.0),
        ("ben", 2, 1, 2.0),
    ]
    assert stats["conversations"] == 4  # x, y, z, w: the ratings started none


async def test_the_rating_window_runs_on_the_desk_clock(bot: SupportBot) -> None:
    """The resolution is stamped and the rating judged by the desk's clock (the one tests set), not the wall's."""
    desk = desk_of(bot)
    anna = await make_agent(bot.database, "anna")
    now = [utcnow() - timedelta(days=3)]
    desk.clock = lambda: now[0]
    late = await _handed_off(bot, "late", "I want to talk to a human")
    early = await _handed_off(bot, "early", "I want to talk to a human")
    await desk.drain()
    for conversation_id in (late, early):
        await desk.moves.accept(conversation_id, anna.id)
        await desk.moves.reply(conversation_id, anna.id, "Done, anything else?")
        await desk.moves.resolve(conversation_id, anna.id, "answered")
    window = timedelta(seconds=bot.settings.handoff.csat_window)

    now[0] += window - timedelta(minutes=1)  # just inside the window on the desk's clock
    in_time = await bot.receive(incoming(payload=f"csat:{early}:3", customer="early"))
    assert [reply.text for _, reply in in_time.replies] == ["Thank you for your rating!"]
    now[0] += timedelta(minutes=2)  # just past it (two days ago on the wall's clock)
    too_late = await bot.receive(incoming(payload=f"csat:{late}:1", customer="late"))
    assert too_late.conversation_id == late
    assert [reply.text for _, reply in too_late.replies] == [phrase("csat_expired", "en")]
    async with bot.database.session() as session:
        events = (await session.execute(select(Event).where(Event.kind == "csat"))).scalars().all()
    assert [(e.conversation_id, e.data["score"]) for e in events] == [(early, 3)]


async def test_no_question_when_csat_is_off(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> None:
    channel = RecordingChannel()
    bot = SupportBot(
        make_settings(handoff={"csat": False}), channels=[channel], encoder=encoder, database=database
    )
    await bot.start(progress=False)
    try:
        await make_agent(bot.database, "anna")
        x = await _handed_off(bot, "x", "I want to talk to a human")
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            await _served_and_resolved(await Api.login(client, "anna"), x)
            await wait_for(lambda: any("conversation is closed" in t for t in sent_texts(channel)))
        await desk_of(bot).drain()
        assert not any("rate this conversation" in t for t in sent_texts(channel))
    finally:
        await desk_of(bot).close()
        bot.executor.shutdown(wait=False)


async def test_web_chat_visitor_rates_with_a_button(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> None:
    settings = make_settings()
    bot = SupportBot(
        settings, channels=[WebchatChannel(settings.channels.webchat)], encoder=encoder, database=database
    )
    await bot.start(progress=False)
    visitor = {"X-Visitor-Id": "csat-visitor-0123456789"}
    try:
        await make_agent(bot.database, "anna")
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            handed = await client.post(
                "/api/v1/webchat/messages", json={"text": "I want to talk to a human"}, headers=visitor
            )
            assert handed.json()["state"] == "waiting"
            anna = await Api.login(client, "anna")
            [waiting] = await anna.ok("GET", "/conversations", params={"state": "waiting"})
            await _served_and_resolved(anna, waiting["id"])

            async def question() -> dict[str, Any] | None:
                response = await client.get("/api/v1/webchat/messages", headers=visitor)
                messages = response.json()["messages"]
                return next((m for m in messages if "csat:" in str(m["buttons"])), None)

            asked = await wait_for(question, what="the rating question in the web chat")
            assert asked["text"] == "How did we do? Please rate this conversation."
            great = asked["buttons"][2]
            assert great == {"title": "😀 Great", "payload": f"csat:{waiting['id']}:3"}
            pressed = await client.post(
                "/api/v1/webchat/messages",
                json={"payload": great["payload"], "text": great["title"]},
                headers=visitor,
            )
            assert pressed.status_code == 200, pressed.text
            assert [r["text"] for r in pressed.json()["replies"]] == ["Thank you for your rating!"]
            stats = await (await Api.login(client, "anna")).call("GET", "/stats")
            assert stats.status_code == 403
        async with bot.database.session() as session:
            [event] = (await session.execute(select(Event).where(Event.kind == "csat"))).scalars().all()
        assert (event.conversation_id, event.data) == (waiting["id"], {"score": 3, "agent": "anna"})
    finally:
        await desk_of(bot).close()
        bot.executor.shutdown(wait=False)
