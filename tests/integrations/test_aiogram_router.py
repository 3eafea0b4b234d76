"""support_router inside a team's own aiogram Dispatcher, polling the stand-in Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message

from bot.app import SupportBot
from bot.config import Settings
from bot.integrations.aiogram_router import AiogramSupport, support_router
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from tests.support.handoff import desk_of, make_agent, wait_for
from tests.support.telegram import (
    CUSTOMER,
    TOKEN,
    Rig,
    buttons_of,
    callback_update,
    kb_answer,
    telegram_settings,
    text_update,
)
from tests.support.telegram_api import TelegramApiStub

WELCOME = "Welcome to Northwind's own bot!"


@dataclass
class DispatcherRig(Rig):
    """A team's aiogram Dispatcher with its own /start, plus supportbot's router."""

    team_saw: list[str] = field(default_factory=list)


@pytest.fixture
async def aiogram_rig(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
) -> AsyncIterator[DispatcherRig]:
    settings = make_settings(
        channels={"telegram": telegram_settings(telegram_api.url)}, outbox={"base_backoff_seconds": 0.2}
    )
    bot = SupportBot(
        settings, encoder=encoder, database=database
    )  # no channel of its own: aiogram's Bot sends
    await bot.start(progress=False)
    team_saw: list[str] = []
    team = Router(name="team")

    @team.message(CommandStart())
    async def start(message: Message) -> None:  # the team's bot, as before
        team_saw.append(message.text or "")
        await message.answer(WELCOME)

    dispatcher = Dispatcher()
    dispatcher.include_router(team)
    dispatcher.include_router(support_router(settings, support_bot=bot))
    telegram = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram_api.url)))
    polling = asyncio.create_task(
        dispatcher.start_polling(telegram, handle_signals=False, polling_timeout=1, close_bot_session=True)
    )
    try:
        yield DispatcherRig(bot, bot.channels["telegram"], telegram_api, team_saw=team_saw)  # type: ignore[arg-type]
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 10)
        await bot.handoff.close()
        await bot.close()


async def test_the_teams_start_stays_theirs_and_supportbot_answers_the_rest(
    aiogram_rig: DispatcherRig,
) -> None:
    api = aiogram_rig.api
    api.push(text_update("/start", message_id=601))
    [welcome] = await api.wait_for("sendMessage")
    assert welcome["visible"] == WELCOME and aiogram_rig.team_saw == ["/start"]

    api.push(text_update("Сколько идёт доставка?", language="ru", message_id=602))
    answer = (await api.wait_for("sendMessage", 2))[-1]
    assert answer["visible"] == kb_answer(aiogram_rig.bot, "delivery_time", "ru")
    assert str(answer["chat_id"]) == str(CUSTOMER)
    assert buttons_of(answer) == [("👍", "sb:fb:up:delivery_time"), ("👎", "sb:fb:down:delivery_time")]

    api.push(callback_update("sb:fb:up:delivery_time", pressed=int(answer["message_id"]), query_id="q-1"))
    thanks = (await api.wait_for("sendMessage", 3))[-1]
    assert thanks["visible"] == phrase("feedback_thanks", "ru")
    assert [c["callback_query_id"] for c in api.ok_calls("answerCallbackQuery")] == ["q-1"]
    assert aiogram_rig.team_saw == ["/start"]  # nothing of ours reached the team's handlers


async def test_a_handoff_and_the_agents_reply_go_through_the_dispatchers_bot(
    aiogram_rig: DispatcherRig,
) -> None:
    api, bot = aiogram_rig.api, aiogram_rig.bot
    anna = await make_agent(bot.database, "anna", name="Anna", languages=["ru"])
    api.push(text_update("оператор", message_id=701))
    queued = (await api.wait_for("sendMessage"))[-1]
    conversation = await aiogram_rig.conversation()
    assert conversation.state == State.WAITING
    assert queued["visible"].startswith(phrase("handoff", "ru", position=1))

    desk = desk_of(bot)
    await desk.moves.accept(conversation.id, anna.id)
    await desk.moves.reply(conversation.id, anna.id, "Здравствуйте, это Анна. Чем помочь?")
    await wait_for(
        lambda: any(s["visible"] == "Здравствуйте, это Анна. Чем помочь?" for s in api.sent()),
        what="agent reply",
    )
    api.push(text_update("Где мой заказ?", message_id=702))  # the customer's answer goes to the agent

    async def both_stored() -> bool:  # aiogram confirms an update before its handler has run
        return [m.text for m in await aiogram_rig.messages("in")] == ["оператор", "Где мой заказ?"]

    await wait_for(both_stored, what="the customer's second message")
    assert (await aiogram_rig.conversation()).state == State.WITH_AGENT


async def test_the_router_starts_its_own_support_bot_on_startup(
    make_settings: Callable[..., Settings], telegram_api: TelegramApiStub, tmp_path: object
) -> None:
    settings = make_settings(channels={"telegram": telegram_settings(telegram_api.url)})
    support = AiogramSupport(settings)
    telegram = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram_api.url)))
    try:
        await support.on_startup(telegram)
        assert support.support_bot is not None and support.channel.bot is telegram
        assert support.support_bot.channels["telegram"] is support.channel
    finally:
        await support.on_shutdown()
        await telegram.session.close()
    assert support.support_bot is None
