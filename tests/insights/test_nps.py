"""NPS after resolved chats: asked once per customer per interval, in their language, buttons or a typed
number by channel, stored once, reported in the numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import SupportBot
from bot.config import Settings
from bot.insights.stats import compute_stats
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Event, utcnow
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, desk_of, http_client, make_agent, wait_for
from tests.support.server import LiveServer


@pytest.fixture
async def sqlite(tmp_path: Any) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/nps.db")
    await db.migrate()
    yield db
    await db.close()


async def scores(bot: SupportBot) -> list[tuple[int | None, int]]:
    async with bot.database.session() as session:
        rows = await session.execute(select(Event.conversation_id, Event.data).where(Event.kind == "nps"))
        return [(conversation_id, data["score"]) for conversation_id, data in rows.all()]


async def test_nps_is_asked_once_per_interval_and_stored_once(
    make_settings: Callable[..., Settings], sqlite: Database, encoder: E5Encoder
) -> None:
    settings = make_settings(feedback={"nps": True, "nps_interval_days": 30}, handoff={"csat": False})
    web, whatsapp = RecordingChannel("test"), RecordingChannel("whatsapp")
    bot = SupportBot(settings, channels=[web, whatsapp], encoder=encoder, database=sqlite)
    await bot.start(progress=False)
    desk = desk_of(bot)
    try:
        await make_agent(bot.database, "anna")
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            anna = await Api.login(client, "anna")

            async def served(customer: str, text: str = "Соедините меня с оператором", **kw: Any) -> int:
                channel = kw.pop("channel", "test")
                handed = await bot.receive(replace(incoming(text, customer=customer, **kw), channel=channel))
                assert handed.state == "waiting" and handed.conversation_id is not None
                await desk.drain()
                cid = handed.conversation_id
                await anna.ok("POST", f"/conversations/{cid}/accept")
                await anna.ok("POST", f"/conversations/{cid}/messages", json={"text": "Готово."})
                await anna.ok("POST", f"/conversations/{cid}/resolve", json={"reason": "answered"})
                return cid

            def asked(channel: RecordingChannel, cid: int) -> Any:
                return next(
                    (
                        reply
                        for target, reply in channel.sent
                        if target.conversation_id == cid
                        and (
                            any(b.payload.startswith("nps:") for b in reply.buttons)
                            or "0 to 10" in reply.text
                        )
                    ),
                    None,
                )

            first = await served("r", language_hint="ru")
            question = await wait_for(lambda: asked(web, first), what="the NPS question")
            assert question.text == "Насколько вероятно, что вы порекомендуете нас другу, от 0 до 10?"
            assert [(b.title, b.payload) for b in question.buttons] == [
                (str(n), f"nps:{first}:{n}") for n in range(11)
            ]
            thanks = await bot.receive(incoming(customer="r", payload=f"nps:{first}:9"))
            assert [reply.text for _, reply in thanks.replies] == ["Спасибо, это нам очень помогает!"]
            again = await bot.receive(incoming(customer="r", payload=f"nps:{first}:3"))
            assert [reply.text for _, reply in again.replies] == ["Вы уже ответили. Спасибо!"]
            assert await scores(bot) == [(first, 9)]

            # within the interval: not asked again; a month later: asked again
            second = await served("r", language_hint="ru")
            await desk.drain()
            assert asked(web, second) is None
            desk.clock = lambda: utcnow() + timedelta(days=31)
            third = await served("r", language_hint="ru")
            await wait_for(lambda: asked(web, third), what="the NPS question a month later")

            # WhatsApp: no room for eleven buttons, a typed number answers; after that, numbers are numbers
            desk.clock = utcnow
            typed = await served("w", "I want to talk to a human", channel="whatsapp")
            text_only = await wait_for(lambda: asked(whatsapp, typed), what="the typed NPS question")
            assert text_only.buttons == () and text_only.text.endswith("Please reply with a number.")
            answer = await bot.receive(replace(incoming("4", customer="w"), channel="whatsapp"))
            assert [reply.text for _, reply in answer.replies] == ["Thank you, that helps us a lot!"]
            later = await bot.receive(replace(incoming("5", customer="w"), channel="whatsapp"))
            assert later.conversation_id != typed  # an ordinary message to the bot, in a new conversation
            assert sorted(s for _, s in await scores(bot)) == [4, 9]

            # with CSAT on, the NPS question follows the rating
            bot.settings.handoff.csat = True
            rated = await served("c", "I want to talk to a human")
            after = await bot.receive(incoming(customer="c", payload=f"csat:{rated}:3"))
            texts = [reply.text for _, reply in after.replies]
            assert texts == [
                "Thank you for your rating!",
                "How likely are you to recommend us to a friend, from 0 to 10?",
            ]
            await bot.receive(incoming(customer="c", payload=f"nps:{rated}:10"))

        numbers = await compute_stats(bot.database, 1)
        assert (numbers.nps.count, numbers.nps.promoters, numbers.nps.detractors) == (3, 2, 1)
        assert numbers.nps.score == round(100 * (2 - 1) / 3, 1)
    finally:
        await desk.close()
        bot.executor.shutdown(wait=False)
