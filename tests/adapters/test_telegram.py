"""The Telegram channel on aiogram: polling and webhook over real HTTP, a stand-in Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.adapters.base import DeliveryTarget
from bot.adapters.registry import enabled_channels
from bot.adapters.telegram import TelegramChannel
from bot.adapters.telegram_base import ChatUnavailable, utf16_len
from bot.adapters.telegram_payloads import CustomerMessage, Ignored, MemberChange, parse_update
from bot.app import SupportBot
from bot.config import Settings, TelegramSettings
from bot.errors import ConfigError, SendError
from bot.messages import Attachment, Button, OutgoingReply
from bot.nlu.encoders import E5Encoder
from bot.phrases import phrase
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Conversation, Customer, Message
from bot.storage.repositories import MessageRepository
from bot.web.app import create_app
from tests.support.server import LiveServer, free_port
from tests.support.telegram import (
    CUSTOMER,
    FIXTURES,
    SECRET,
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

# --- payloads: the real fixtures, and updates shaped like them ---------------------------------------


def every_fixture() -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (name, Update) for every payload in tests/fixtures/telegram, wrapping bare Messages."""
    for path in sorted(FIXTURES.rglob("*.json")):
        data = load(str(path.relative_to(FIXTURES)))
        if isinstance(data, dict) and "ok" in data:  # an API response: getUpdates, or a sent Message
            results = data["result"] if isinstance(data["result"], list) else [{"message": data["result"]}]
            items = [(f"{path.stem}[{n}]", update) for n, update in enumerate(results)]
        elif isinstance(data, dict) and "message_id" in data:  # a bare Message (message_with_invoice)
            items = [(path.stem, {"update_id": 1, "message": data})]
        elif isinstance(data, dict) and ("update_id" in data or len(data) == 1):
            items = [(path.stem, data)]
        else:  # {example name: Update}
            items = [
                (f"{path.stem}.{name}", update) for name, update in data.items() if not name.startswith("_")
            ]
        yield from items


# --- rigs ----------------------------------------------------------------------------------------------


@pytest.fixture
async def rig(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
) -> AsyncIterator[Rig]:
    """`supportbot run` in polling mode: outbox, channel and all, against the stand-in Bot API."""
    settings = make_settings(
        channels={"telegram": telegram_settings(telegram_api.url)},
        outbox={"base_backoff_seconds": 0.2},
    )
    channel = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,), backoff=(0.05, 0.2))
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await bot.start(progress=False)
    await channel.start(bot.inbox)  # replies go out right after each turn; retries via Rig.pump_outbox
    try:
        yield Rig(bot, channel, telegram_api)
    finally:
        await bot.close()


@pytest.fixture
async def webhook_rig(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
) -> AsyncIterator[Rig]:
    """`supportbot run` in webhook mode: POST /webhooks/telegram served over a real socket."""
    extra = {
        "mode": "webhook",
        "webhook_url": "https://support.example.com/webhooks/telegram",
        "webhook_secret": SECRET,
    }
    settings = make_settings(
        channels={"telegram": telegram_settings(telegram_api.url, **extra)},
        outbox={"poll_interval_seconds": 0.1},
    )
    channel = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,))
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await bot.start(progress=False)
    await channel.start(bot.inbox)  # registers the webhook
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            yield Rig(bot, channel, telegram_api, http)
    finally:
        await bot.close()


# --- acceptance: polling -------------------------------------------------------------------------------


async def test_polling_answers_a_russian_question_and_hands_off_on_operator(rig: Rig) -> None:
    rig.api.push(text_update("Сколько идёт доставка?", language="ru", message_id=501))
    [answer] = await rig.api.wait_for("sendMessage")
    assert str(answer["chat_id"]) == str(CUSTOMER) and answer["parse_mode"] == "HTML"
    assert answer["visible"] == kb_answer(rig.bot, "delivery_time", "ru")
    assert buttons_of(answer) == [("👍", "sb:fb:up:delivery_time"), ("👎", "sb:fb:down:delivery_time")]
    [typing, *_] = [c for c in rig.api.calls if c.method == "sendchataction"]
    first_send = next(c for c in rig.api.calls if c.method == "sendmessage")
    assert typing.params["action"] == "typing" and typing.at <= first_send.at  # "typing…" before the answer
    getme, delete = rig.api.ok_calls("getMe"), rig.api.ok_calls("deleteWebhook")
    assert getme and delete and delete[0].get("drop_pending_updates") in (None, "false", False)

    rig.api.push(text_update("оператор", language="ru", message_id=502))
    _, handoff = await rig.api.wait_for("sendMessage", 2)
    conversation = await rig.conversation()
    assert conversation.state == State.WAITING
    # "оператор" is the same word in Russian and Ukrainian: the acknowledgement is in the conversation's language.
    assert conversation.language in ("ru", "uk")
    assert handoff["visible"].startswith(phrase("handoff", conversation.language, position=1))
    assert [data for _, data in buttons_of(handoff)] == ["sb:bot"]  # Cancel: back to the bot
    await settled(rig.api)
    inbound = await rig.messages("in")
    assert [m.platform_message_id for m in inbound] == ["501", "502"]
    assert all(m.status == "sent" and m.platform_message_id for m in await rig.messages("out"))
    customer = await rig.customer()
    assert (customer.display_name, customer.username) == ("FirstName LastName", "username")


async def test_start_shows_topics_and_buttons_come_back_as_payloads(rig: Rig) -> None:
    rig.api.push(text_update("/start", language="uk", message_id=601))
    [menu] = await rig.api.wait_for("sendMessage")
    assert menu["visible"] == phrase("greet", "uk")
    buttons = buttons_of(menu)
    assert len(buttons) >= 3 and buttons[-1] == (phrase("offer_human", "uk"), "sb:human")
    assert all(data.startswith("sb:entry:") and len(data.encode()) <= 64 for _, data in buttons[:-1])
    assert len(menu["reply_markup"]["inline_keyboard"]) == len(buttons)  # long titles: one per row

    rig.api.push(
        callback_update(
            "sb:entry:delivery_time", pressed=int(menu["message_id"]), query_id="q-1", language="uk"
        )
    )
    _, answer = await rig.api.wait_for("sendMessage", 2)
    assert answer["visible"] == kb_answer(rig.bot, "delivery_time", "uk")
    assert rig.api.ok_calls("answerCallbackQuery")[0]["callback_query_id"] == "q-1"

    vote = callback_update(
        "sb:fb:up:delivery_time", pressed=int(answer["message_id"]), query_id="q-2", language="uk"
    )
    rig.api.push(vote)
    rig.api.push(vote)  # Telegram delivering the same press twice
    await settled(rig.api)
    await rig.api.wait_for("editMessageReplyMarkup")
    sends = rig.api.sent()
    assert [s["visible"] for s in sends[2:]] == [phrase("feedback_thanks", "uk")]
    [edit] = rig.api.ok_calls("editMessageReplyMarkup")
    assert int(edit["message_id"]) == int(answer["message_id"]) and not edit.get("reply_markup")
    assert [c["callback_query_id"] for c in rig.api.ok_calls("answerCallbackQuery")] == ["q-1", "q-2", "q-2"]
    assert [m.payload for m in await rig.messages("in")] == [
        "start",
        "entry:delivery_time",
        "fb:up:delivery_time",
    ]


async def test_files_contacts_stickers_and_edits(rig: Rig) -> None:
    photo = for_customer(load("illemius_telegram_types/message_with_photo.json"), message_id=701)
    photo["message"]["caption"] = ""  # a bare photo, no words to read
    contact = for_customer(
        {"message": load("opi_getupdates_forum/sendContact_response_message_contact_ru.json")["result"]},
        message_id=702,
    )
    contact["message"]["contact"]["user_id"] = CUSTOMER  # shared with the "share my number" button
    contact["message"]["from"] = text_update("")["message"]["from"]
    sticker = for_customer(load("illemius_telegram_types/message_with_sticker.json"), message_id=703)
    for update in (photo, sticker):
        update["message"]["from"] = text_update("")["message"]["from"]  # a Russian-speaking customer
    question = text_update("Сколько стоит доставка?", message_id=704)
    edit = for_customer(
        load("official_webhooks_guide/update_examples.json")["edited_message"], message_id=704
    )
    edit["edited_message"]["text"] = "Сколько идёт доставка в Украину?"
    for update in (photo, contact, sticker, question):
        rig.api.push(update)
    await settled(rig.api)
    await rig.api.wait_for("sendMessage", 4)
    rig.api.push(edit)
    await settled(rig.api)
    language = (await rig.conversation()).language or "ru"
    assert [s["visible"] for s in rig.api.sent()] == [
        phrase("attachment_received", language, kind="photo"),
        phrase("attachment_received", language, kind="contact"),
        phrase("unsupported", language),
        kb_answer(rig.bot, "delivery_cost", language),
    ]  # and nothing for the edit
    inbound = await rig.messages("in")
    stored = [(m.attachments[0]["kind"], m.attachments[0]["file_id"]) for m in inbound[:3]]
    assert stored == [
        ("photo", "AgADAgADOagxG8vyeUvsltCem_XPv5A6Sw0ABNXULc5u7jny5VkRAAEC"),  # the largest size
        ("contact", None),
        ("sticker", "CAADAgADOgADKHr7A36pyyv9e36nAg"),
    ]
    assert inbound[3].text == "Сколько идёт доставка в Украину?" and inbound[3].edited_at is not None
    assert (await rig.customer()).phone == "88005553535"  # kept for order look-ups


async def test_a_customer_who_blocks_the_bot_is_not_written_to(rig: Rig) -> None:
    rig.api.push(text_update("Сколько идёт доставка?", message_id=801))
    await rig.api.wait_for("sendMessage")
    kicked = for_customer(
        load("autogram_my_chat_member/my_chat_member_examples.json")["private_bot_blocked_kick"]
    )
    rig.api.push(kicked)
    await settled(rig.api)
    assert (await rig.customer()).blocked
    async with rig.bot.database.session() as session:  # an agent's reply written while they are blocked
        conversation = await session.get(Conversation, (await rig.conversation()).id)
        assert conversation is not None
        await MessageRepository(session).add_outbound(
            conversation, OutgoingReply("Ваш заказ отправлен."), sender="agent"
        )
    await rig.bot.outbox.deliver()
    assert len(rig.api.sent()) == 1
    assert (await rig.messages("out"))[-1].status == "failed"
    events = [c.method for c in rig.api.calls]
    assert events.count("sendmessage") == 1


async def test_a_403_on_send_marks_the_customer_blocked(rig: Rig) -> None:
    rig.api.fail_next("sendMessage", Failure.blocked())
    rig.api.push(text_update("Сколько идёт доставка?", message_id=811))
    await settled(rig.api)
    await rig.pump_outbox()
    [outbound] = await rig.messages("out")
    assert outbound.status == "failed" and "403" in (outbound.last_error or "")
    assert (await rig.customer()).blocked
    assert rig.api.sent() == []


async def test_429_and_500_are_retried_and_the_reply_arrives_once(rig: Rig) -> None:
    rig.api.fail_next("sendMessage", Failure.too_many_requests(retry_after=1), Failure.server_error())
    rig.api.push(text_update("Сколько идёт доставка?", message_id=901))
    await settled(rig.api)
    await rig.pump_outbox()
    [answer] = rig.api.sent()
    assert answer["visible"] == kb_answer(rig.bot, "delivery_time", "ru")
    attempts = [c for c in rig.api.calls if c.method == "sendmessage"]
    assert [c.status for c in attempts] == [429, 500, 200]
    assert attempts[1].at - attempts[0].at >= 0.95  # retry_after: 1 was respected
    await rig.pump_outbox()
    [outbound] = await rig.messages("out")
    assert outbound.status == "sent" and outbound.attempts == 3
    assert outbound.platform_message_id == str(answer["message_id"])


# --- acceptance: webhook -------------------------------------------------------------------------------


async def test_webhook_checks_the_secret_and_answers_a_redelivered_update_once(webhook_rig: Rig) -> None:
    rig = webhook_rig
    [registered] = await rig.api.wait_for("setWebhook")
    assert registered["url"] == "https://support.example.com/webhooks/telegram"
    assert registered["secret_token"] == SECRET
    assert registered["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"]

    update = {**text_update("Сколько идёт доставка?", message_id=1001), "update_id": 777000001}
    assert (await rig.post(update, secret=None)).status_code == 401
    assert (await rig.post(update, secret="wrong-secret")).status_code == 401
    assert (await rig.post(update, secret="sëcret".encode())).status_code == 401  # non-ASCII header
    async with rig.bot.database.session() as session:
        assert (await session.execute(select(func.count()).select_from(Message))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 0
    assert rig.api.sent() == []

    first, second = await asyncio.gather(rig.post(update), rig.post(update))  # a redelivery racing the first
    assert first.status_code == second.status_code == 200
    assert (await rig.post(update)).status_code == 200  # and a late one
    [answer] = rig.api.sent()
    assert answer["visible"] == kb_answer(rig.bot, "delivery_time", "ru")
    assert len(await rig.messages("in")) == 1

    assert (await rig.post(b'{"update_id": 1, "message": {')).status_code == 400
    assert (await rig.post(b"[1, 2]")).status_code == 400
    assert (await rig.post(b"[" * 100_000 + b"]" * 100_000)).status_code == 400  # too deep to parse: was 500


async def test_every_fixture_goes_through_the_webhook_without_errors(
    webhook_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    stored_expected: set[tuple[str, str]] = set()
    polite_expected = 0
    for number, (name, raw) in enumerate(every_fixture()):
        update = copy.deepcopy(raw)
        body = update.get("message") or update.get("edited_message")
        if isinstance(body, dict) and body.get("chat", {}).get("type", "private") == "private":
            update = for_customer(update, user=1000 + number)  # each example: its own customer
        event = parse_update(update)
        if isinstance(event, CustomerMessage):
            stored_expected.add((event.message.chat_id, event.message.platform_message_id or ""))
            kinds = {a.kind for a in event.message.attachments}
            polite_expected += bool(
                kinds & {"sticker", "animation", "unsupported"} and not event.message.text
            )
        response = await webhook_rig.post(update)
        assert response.status_code == 200, (name, response.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with webhook_rig.bot.database.session() as session:
        rows = await session.execute(
            select(Conversation.chat_id, Message.platform_message_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.direction == "in")
        )
        assert {tuple(row) for row in rows} == stored_expected and len(stored_expected) >= 15
    outbound = await webhook_rig.messages("out")
    assert len(outbound) == len(stored_expected) and all(m.status == "sent" for m in outbound)
    polite = {phrase("unsupported", language) for language in ("en", "ru", "pl", "uk")}
    assert len([s for s in webhook_rig.api.sent() if s["visible"] in polite]) == polite_expected >= 4


async def test_a_processing_failure_answers_500_so_telegram_redelivers(
    make_settings: Callable[..., Settings], telegram_api: TelegramApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"  # the database is down
    extra = {
        "mode": "webhook",
        "webhook_url": "https://support.example.com/webhooks/telegram",
        "webhook_secret": SECRET,
    }
    settings = make_settings(
        database={"url": dead}, channels={"telegram": telegram_settings(telegram_api.url, **extra)}
    )
    channel = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,))
    bot = SupportBot(settings, channels=[channel])
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            rig = Rig(bot, channel, telegram_api, http)
            response = await rig.post(text_update("Сколько идёт доставка?", message_id=1101))
        assert response.status_code == 500
    finally:
        await bot.close()
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR and "redeliver" in r.getMessage()]
    assert '"message_id": 1101' in record.getMessage()  # the raw update, for replay
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1
    assert telegram_api.sent() == []


async def test_polling_does_not_confirm_an_update_it_could_not_store(
    make_settings: Callable[..., Settings], telegram_api: TelegramApiStub, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    settings = make_settings(
        database={"url": dead}, channels={"telegram": telegram_settings(telegram_api.url)}
    )
    channel = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,), backoff=(0.05, 0.05))
    bot = SupportBot(settings, channels=[channel])
    try:
        await channel.start(bot.inbox)
        telegram_api.push(text_update("Сколько идёт доставка?", message_id=1201))
        for _ in range(500):  # it is fetched again and again, then logged with its JSON and skipped
            if any("skipped" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        fetches = [c for c in telegram_api.calls if c.method == "getupdates" and c.status == 200]
        assert len(fetches) >= 5
    finally:
        await bot.close()
    [skipped] = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert "Сколько идёт доставка?" in skipped.getMessage()


# --- sending: HTML, splitting, keyboards, errors --------------------------------------------------------


@pytest.fixture
async def channel(telegram_api: TelegramApiStub) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(TelegramSettings(**telegram_settings(telegram_api.url)))
    yield channel
    await channel.stop()


def target(message_id: int = 1) -> DeliveryTarget:
    return DeliveryTarget("telegram", str(CUSTOMER), str(CUSTOMER), 1, "ru", message_id)


async def test_user_strings_are_escaped_and_long_replies_split_on_paragraphs(
    channel: TelegramChannel, telegram_api: TelegramApiStub
) -> None:
    tricky = 'Заказ <b>№5</b> & "R&D" <script>alert(1)</script> 5 > 3 &amp;'
    await channel.send(target(), OutgoingReply(tricky))
    [sent] = telegram_api.sent()
    assert sent["visible"] == tricky and "&lt;b&gt;" in sent["text"]
    paragraphs = [f"Пункт {n}. " + "Доставка и возврат 📦. " * 45 for n in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    message_id = await channel.send(
        target(2), OutgoingReply(text, (Button("👍", "fb:up:x"), Button("👎", "fb:down:x")))
    )
    parts = telegram_api.sent()[1:]
    assert len(parts) > 2 and all(utf16_len(p["visible"]) <= 4096 for p in parts)
    assert "\n\n".join(p["visible"] for p in parts) == text  # cut only between paragraphs
    assert [bool(p.get("reply_markup")) for p in parts] == [False] * (len(parts) - 1) + [True]
    assert message_id == str(parts[-1]["message_id"])


async def test_long_button_payloads_fit_in_64_bytes_and_come_back(
    channel: TelegramChannel, telegram_api: TelegramApiStub
) -> None:
    long_payload = "entry:" + "очень_длинный_идентификатор_статьи_базы_знаний"
    await channel.send(
        target(), OutgoingReply("Выберите:", (Button("Статья", long_payload), Button("Оператор", "human")))
    )
    [(_, data), (_, human)] = buttons_of(telegram_api.sent()[0])
    assert len(data.encode()) <= 64 and human == "sb:human"
    assert channel.payload_of(data) == long_payload and channel.payload_of(human) == "human"
    assert channel.payload_of("team:orders") == "team:orders"  # not ours: passed through untouched


async def test_attachments_are_sent_with_their_own_methods(
    channel: TelegramChannel, telegram_api: TelegramApiStub
) -> None:
    reply = OutgoingReply(
        "Вот ваш чек",
        attachments=(
            Attachment("photo", "AgADAgADOagxG8vyeUvs", caption="Чек <№5>"),
            Attachment("location", data={"latitude": 52.2297, "longitude": 21.0122}),
        ),
    )
    await channel.send(target(), reply)
    assert [c.method for c in telegram_api.calls] == ["sendmessage", "sendphoto", "sendlocation"]
    assert telegram_api.ok_calls("sendPhoto")[0]["visible"] == "Чек <№5>"
    with pytest.raises(SendError) as raised:
        await channel.send(target(2), OutgoingReply("", attachments=(Attachment("photo"),)))
    assert raised.value.permanent


@pytest.mark.parametrize(
    ("failure", "permanent", "retry_after", "shown"),
    [
        (Failure.too_many_requests(7), False, 7.0, "retry after 7"),
        (Failure.server_error(), False, None, "Internal Server Error"),
        (Failure(502, "Bad Gateway"), False, None, "Bad Gateway"),
        (Failure.blocked(), True, None, "blocked by the user"),
        (Failure(400, "Bad Request: chat not found"), True, None, "chat not found"),
        (Failure(401, "Unauthorized"), False, None, "channels.telegram.token"),
    ],
)
async def test_bot_api_errors_become_send_errors_the_outbox_understands(
    channel: TelegramChannel,
    telegram_api: TelegramApiStub,
    failure: Failure,
    permanent: bool,
    retry_after: float | None,
    shown: str,
) -> None:
    telegram_api.fail_next("sendMessage", failure)
    with pytest.raises(SendError) as raised:
        await channel.send(target(), OutgoingReply("Здравствуйте"))
    assert raised.value.permanent is permanent
    assert raised.value.retry_after == retry_after
    assert shown in str(raised.value)
    assert isinstance(raised.value, ChatUnavailable) is (failure.status == 403)


async def test_an_unreachable_bot_api_is_a_retryable_send_error() -> None:
    channel = TelegramChannel(TelegramSettings(**telegram_settings(f"http://127.0.0.1:{free_port()}")))
    try:
        with pytest.raises(SendError) as raised:
            await channel.send(target(), OutgoingReply("Здравствуйте"))
        assert raised.value.permanent is False and "TelegramNetworkError" in str(raised.value)
    finally:
        await channel.stop()


async def test_a_retry_resumes_after_the_parts_already_delivered(
    channel: TelegramChannel, telegram_api: TelegramApiStub
) -> None:
    text = "\n\n".join((f"Часть {n}. " + "слово " * 600).strip() for n in range(3))
    telegram_api.fail_next("sendMessage", None, Failure.server_error())  # part 1 goes out, part 2 fails
    with pytest.raises(SendError):
        await channel.send(target(8), OutgoingReply(text))
    await channel.send(target(8), OutgoingReply(text))  # the outbox's retry
    parts = [p["visible"] for p in telegram_api.sent()]
    assert len(parts) == 3 and "\n\n".join(parts) == text  # no part twice, none missing


# --- parsing, configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "update"), list(every_fixture()), ids=[name for name, _ in every_fixture()])
def test_every_fixture_parses_without_an_exception(name: str, update: dict[str, Any]) -> None:
    event = parse_update(update)
    assert not (isinstance(event, Ignored) and event.kind in ("unparseable", "malformed")), event


def test_fixture_updates_map_to_the_channel_neutral_model() -> None:
    examples = dict(every_fixture())

    def message(name: str) -> Any:
        event = parse_update(examples[name])
        assert isinstance(event, CustomerMessage), (name, event)
        return event.message

    text = message("message")
    assert (text.text, text.chat_id, text.customer_id, text.language_hint) == (
        "Hi, world!",
        "12345678",
        "12345678",
        "ru",
    )
    assert text.platform_message_id == "11223" and text.display_name == "FirstName LastName"
    assert message("update_examples.message_text_first_example").payload == "start"  # 2015: no chat.type
    kinds = {
        name: [a.kind for a in message(name).attachments]
        for name in (
            "message_with_photo",
            "message_with_document",
            "message_with_audio",
            "message_with_voice",
            "message_with_video",
            "message_with_location",
            "message_with_sticker",
            "message_with_game",
            "message_with_invoice",
            "message_with_successful_payment",
            "sendContact_response_message_contact_ru[0]",
        )
    }
    assert kinds == {
        "message_with_photo": ["photo"],
        "message_with_document": ["document"],
        "message_with_audio": ["audio"],
        "message_with_voice": ["voice"],
        "message_with_video": ["video"],
        "message_with_location": ["location"],
        "message_with_sticker": ["sticker"],
        "message_with_game": ["unsupported"],
        "message_with_invoice": ["unsupported"],
        "message_with_successful_payment": ["unsupported"],
        "sendContact_response_message_contact_ru[0]": ["contact"],
    }
    assert message("message_with_photo").text == "photo description"
    edited = message("update_examples.edited_message")
    assert edited.edited and edited.text == "Edited text" and edited.platform_message_id == "1365"
    assert message("update_examples.message_with_reply").text
    for name, kind in (
        ("update_examples.inline_query", "inline_query"),
        ("update_examples.chosen_inline_result", "chosen_inline_result"),
        ("update_examples.callback_query", "callback_elsewhere"),  # under an inline message: not our chat
        ("shipping_query", "shipping_query"),
        ("pre_checkout_query", "pre_checkout_query"),
        ("getUpdates_forum_topics_ru[0]", "channel_post"),
        ("getUpdates_forum_topics_ru[1]", "group_chat"),
        ("my_chat_member_examples.forum_supergroup_bot_added", "my_chat_member"),
    ):
        event = parse_update(examples[name])
        assert isinstance(event, Ignored) and event.kind == kind, (name, event)
    blocked = parse_update(examples["my_chat_member_examples.private_bot_blocked_kick"])
    unblocked = parse_update(examples["my_chat_member_examples.private_bot_unblocked"])
    assert blocked == MemberChange("5342492667", blocked=True)
    assert unblocked == MemberChange("5342492667", blocked=False)


def test_odd_updates_are_ignored_not_raised() -> None:
    for odd in (
        [],
        "text",
        {"update_id": 1},
        {"update_id": 1, "message": "x"},
        {"message": {"chat": {"id": 5}}},
    ):
        assert isinstance(parse_update(odd), Ignored)


def test_the_channel_starts_with_a_token_and_checks_webhook_settings(
    make_settings: Callable[..., Settings],
) -> None:
    assert not [c for c in enabled_channels(make_settings()) if c.name == "telegram"]
    [channel] = [
        c
        for c in enabled_channels(make_settings(channels={"telegram": {"token": TOKEN}}))
        if c.name == "telegram"
    ]
    assert isinstance(channel, TelegramChannel) and channel.router(None) is None  # type: ignore[arg-type]
    assert channel.api.api_url(TOKEN, "getMe") == f"https://api.telegram.org/bot{TOKEN}/getMe"
    with pytest.raises(ConfigError, match="webhook_secret"):
        TelegramChannel(
            TelegramSettings(token=TOKEN, mode="webhook", webhook_url="https://x.example/webhooks/telegram")
        )
    with pytest.raises(ConfigError, match="webhook_url"):
        TelegramChannel(TelegramSettings(token=TOKEN, mode="webhook", webhook_secret=SECRET))
    with pytest.raises(ConfigError, match="bot token"):
        TelegramChannel(TelegramSettings(token="not a token"))
