"""The python-telegram-bot integration: a real PTB Application polls the stand-in Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from telegram import Update
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.adapters.telegram_base import ChatUnavailable
from bot.adapters.telegram_ptb import (
    TelegramSupport,
    api_base_file_url,
    api_base_url,
    send_error,
    support_handlers,
)
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from tests.support.telegram import (
    CUSTOMER,
    TOKEN,
    Rig,
    buttons_of,
    callback_update,
    for_customer,
    kb_answer,
    load,
    settled,
    telegram_settings,
    text_update,
)
from tests.support.telegram_api import Failure, TelegramApiStub

# PTB 22 announces that RetryAfter.retry_after becomes a timedelta; send_error handles both forms.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@dataclass
class PTBRig(Rig):
    """A team's PTB Application with its own handlers, plus ours from support_handlers()."""

    team_saw: list[str] = field(default_factory=list)


async def running(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=1)


async def stopped(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    assert application.updater is not None
    await application.updater.stop()
    await application.stop()
    await application.shutdown()


@pytest.fixture
async def ptb(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
) -> AsyncIterator[PTBRig]:
    settings = make_settings(
        channels={"telegram": telegram_settings(telegram_api.url)}, outbox={"base_backoff_seconds": 0.2}
    )
    bot = SupportBot(
        settings, encoder=encoder, database=database
    )  # no aiogram channel: PTB talks to Telegram
    await bot.start(progress=False)
    team_saw: list[str] = []

    async def orders(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        team_saw.append(update.message.text or "")
        await update.message.reply_text("Your orders: none yet")

    async def refresh(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        team_saw.append(update.callback_query.data or "")
        await update.callback_query.answer("refreshed")

    telegram = settings.channels.telegram
    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(api_base_url(telegram))
        .base_file_url(api_base_file_url(telegram))
        .build()
    )
    application.add_handler(CommandHandler("orders", orders))  # the team's own bot, as before
    application.add_handler(CallbackQueryHandler(refresh, pattern="^team:"))
    application.add_handlers(support_handlers(settings, support_bot=bot))
    await running(application)
    channel = bot.channels["telegram"]
    try:
        yield PTBRig(bot, channel, telegram_api, team_saw=team_saw)  # type: ignore[arg-type]
    finally:
        await stopped(application)
        await bot.close()


async def test_the_same_question_through_ptb_gets_the_same_answer(ptb: PTBRig) -> None:
    ptb.api.push(text_update("Сколько идёт доставка?", language="ru", message_id=501))
    [answer] = await ptb.api.wait_for("sendMessage")
    assert answer["visible"] == kb_answer(ptb.bot, "delivery_time", "ru") and answer["parse_mode"] == "HTML"
    assert str(answer["chat_id"]) == str(CUSTOMER)
    assert buttons_of(answer) == [("👍", "sb:fb:up:delivery_time"), ("👎", "sb:fb:down:delivery_time")]
    assert ptb.api.ok_calls("sendChatAction")[0]["action"] == "typing"

    ptb.api.push(text_update("/orders", message_id=502))  # the team's command stays theirs
    ptb.api.push(callback_update("team:refresh", pressed=9000, query_id="team-1"))
    ptb.api.push(callback_update("sb:fb:up:delivery_time", pressed=int(answer["message_id"]), query_id="q-1"))
    await settled(ptb.api)
    await ptb.api.wait_for("editMessageReplyMarkup")
    assert ptb.team_saw == ["/orders", "team:refresh"]
    assert [s["visible"] for s in ptb.api.sent()[1:]] == [
        "Your orders: none yet",
        phrase("feedback_thanks", "ru"),
    ]
    assert [c["callback_query_id"] for c in ptb.api.ok_calls("answerCallbackQuery")] == ["team-1", "q-1"]

    ptb.api.push(text_update("оператор", message_id=503))
    await settled(ptb.api)
    await ptb.api.wait_for("sendMessage", 4)
    conversation = await ptb.conversation()
    assert conversation.state == State.WAITING
    assert ptb.api.sent()[-1]["visible"].startswith(
        phrase("handoff", conversation.language or "ru", position=1)
    )
    stored = [(m.text, m.payload) for m in await ptb.messages("in")]
    assert stored == [("Сколько идёт доставка?", None), ("", "fb:up:delivery_time"), ("оператор", None)]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until `check()` holds (PTB confirms updates before it handles them, so we watch the effect)."""
    for _ in range(int(within / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{check.__name__} never held")


async def test_ptb_retries_a_429_and_stops_writing_to_a_customer_who_blocked_the_bot(ptb: PTBRig) -> None:
    ptb.api.fail_next("sendMessage", Failure.too_many_requests(retry_after=1))
    ptb.api.push(text_update("Сколько идёт доставка?", message_id=601))

    async def reply_stored() -> bool:
        return bool(await ptb.messages("out"))

    await eventually(reply_stored)
    await ptb.pump_outbox()
    [answer] = ptb.api.sent()
    assert answer["visible"] == kb_answer(ptb.bot, "delivery_time", "ru")
    attempts = [c for c in ptb.api.calls if c.method == "sendmessage"]
    assert [c.status for c in attempts] == [429, 200] and attempts[1].at - attempts[0].at >= 0.95

    ptb.api.push(
        for_customer(load("autogram_my_chat_member/my_chat_member_examples.json")["private_bot_blocked_kick"])
    )

    async def customer_blocked() -> bool:
        return (await ptb.customer()).blocked

    await eventually(customer_blocked)

    other = 87654321  # a second customer: a 403 on send marks them blocked too
    ptb.api.fail_next("sendMessage", Failure.blocked())
    ptb.api.push(text_update("Сколько идёт доставка?", user=other, message_id=602))

    async def other_blocked() -> bool:
        return len(await ptb.messages("out")) == 2 and (await ptb.customer(other)).blocked

    await eventually(other_blocked)
    await ptb.pump_outbox()
    assert (await ptb.messages("out"))[-1].status == "failed"
    assert len(ptb.api.sent()) == 1


async def test_support_handlers_start_their_own_bot_on_the_first_update(
    make_settings: Callable[..., Settings],
    telegram_api: TelegramApiStub,
) -> None:
    settings = make_settings(channels={"telegram": telegram_settings(telegram_api.url)})
    support = TelegramSupport(settings)
    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(api_base_url(settings.channels.telegram))
        .post_shutdown(support.post_shutdown)
        .build()
    )
    application.add_handlers(support.handlers())
    await running(application)
    try:
        telegram_api.push(text_update("Jak długo trwa dostawa?", language="pl", message_id=701))
        [answer] = await telegram_api.wait_for("sendMessage", within=30)
        assert support.support_bot is not None
        assert answer["visible"] == kb_answer(support.support_bot, "delivery_time", "pl")
    finally:
        await stopped(application)
        await support.post_shutdown(application)  # what run_polling() does after shutdown()
    assert support.support_bot is None  # the bot it had started is closed


@pytest.mark.parametrize(
    ("error", "permanent", "retry_after", "blocked"),
    [
        (lambda: RetryAfter(3), False, 3.0, False),
        (lambda: RetryAfter(timedelta(seconds=2.5)), False, 2.5, False),
        (lambda: Forbidden("Forbidden: bot was blocked by the user"), True, None, True),
        (lambda: BadRequest("Bad Request: chat not found"), True, None, False),
        (TimedOut, False, None, False),
        (lambda: NetworkError("Internal Server Error (500)"), False, None, False),
        (lambda: InvalidToken("Unauthorized"), False, None, False),
    ],
)
def test_ptb_errors_become_send_errors_the_outbox_understands(
    error: Callable[[], TelegramError], permanent: bool, retry_after: float | None, blocked: bool
) -> None:
    translated = send_error(error(), "sendMessage")  # built here: PTB warns when a RetryAfter is made
    assert translated.permanent is permanent and translated.retry_after == retry_after
    assert isinstance(translated, ChatUnavailable) is blocked
    assert str(translated).startswith("Telegram sendMessage")


def test_api_base_maps_to_ptb_urls(make_settings: Callable[..., Settings]) -> None:
    telegram = make_settings(
        channels={"telegram": {"api_base": "http://tg-api.internal:8081/"}}
    ).channels.telegram
    assert api_base_url(telegram) == "http://tg-api.internal:8081/bot"
    assert api_base_file_url(telegram) == "http://tg-api.internal:8081/file/bot"
    default = make_settings().channels.telegram
    assert api_base_url(default) == "https://api.telegram.org/bot"  # PTB's own default
