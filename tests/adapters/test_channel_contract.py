"""The channel contract: one set of tests, run against every channel (Telegram, WhatsApp, web chat, terminal).

Each channel runs in a harness that knows two things: how to deliver a real inbound payload to it (the
recorded payloads in tests/fixtures, through the channel's own route or parser) and how to see what it
sent (the stand-in Bot API and Graph API, the visitor's stored chat, the terminal's output). The service
around it is the real one: engine, outbox, SQLite. A new channel adds its harness to HARNESSES, and every
test here runs against it; a test that cannot apply to a channel is skipped with the reason.
"""

from __future__ import annotations

import io
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select, update

from bot.adapters.base import Channel, DeliveryTarget
from bot.adapters.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel
from bot.adapters.terminal import TerminalChannel
from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.errors import RateLimited, RecipientUnavailable
from bot.messages import Button, OutgoingReply
from bot.nlu.encoders import E5Encoder
from bot.storage.models import Conversation, Customer, Message
from bot.storage.repositories import MessageRepository
from bot.web.app import create_app
from tests.support.graph_api import Failure as GraphFailure
from tests.support.graph_api import GraphApiStub
from tests.support.server import LiveServer
from tests.support.telegram import CUSTOMER as TELEGRAM_USER
from tests.support.telegram import SECRET, buttons_of, telegram_settings, text_update
from tests.support.telegram_api import Failure as BotApiFailure
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import CUSTOMER as WHATSAPP_USER
from tests.support.whatsapp import WEBHOOK as WHATSAPP_WEBHOOK
from tests.support.whatsapp import sign, text_webhook, whatsapp_settings

QUESTION = "How long does delivery take?"
RETRY_AFTER = 30  # seconds the platform asks for in the rate-limit tests; the outbox's own backoff is 1 s


@dataclass(frozen=True)
class Sent:
    """One message as the customer receives it: where, what text, which buttons (their titles)."""

    chat_id: str
    text: str
    buttons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Env:
    """What a harness builds its service from: the test's settings factory, the model and the stand-ins."""

    make_settings: Callable[..., Settings]
    encoder: E5Encoder
    kb: Path
    telegram_api: TelegramApiStub
    graph_api: tuple[GraphApiStub, str]

    def settings(self, **channels: Any) -> Settings:
        return self.make_settings(kb={"path": str(self.kb)}, channels=channels)


class Harness(ABC):
    """One channel inside the running service, with a way in (real payloads) and a way to look out."""

    name: ClassVar[str]
    chat_id: ClassVar[str]
    customer_id: ClassVar[str]
    # Why a test does not apply to this channel (None: it does).
    no_platform_ids: ClassVar[str | None] = None
    no_auth: ClassVar[str | None] = None
    no_platform_api: ClassVar[str | None] = None

    def __init__(self, bot: SupportBot, channel: Channel) -> None:
        self.bot = bot
        self.channel = channel

    @classmethod
    @abstractmethod
    def running(cls, env: Env) -> Any:
        """Return an async context manager yielding the harness with its service started."""

    @abstractmethod
    async def deliver(self, text: str, number: int) -> None:
        """Deliver a real inbound payload carrying `text` as platform message `number`; return once handled."""

    @abstractmethod
    async def sent(self) -> list[Sent]:
        """Return what the channel sent to customers, oldest first."""

    async def deliver_forged(self, text: str, number: int) -> int:
        """Deliver the payload with wrong credentials; return the HTTP status it was refused with."""
        raise NotImplementedError(self.no_auth)

    def fail_next_sends(self, *failures: str) -> None:
        """Make the platform refuse the next sends: "rate_limited" (Retry-After), "server_error", "blocked"."""
        raise NotImplementedError(self.no_platform_api)


@asynccontextmanager
async def served(
    settings: Settings, channel: Channel, encoder: E5Encoder
) -> AsyncIterator[tuple[SupportBot, httpx.AsyncClient]]:
    """Start the service with this one channel and serve its routes over HTTP on 127.0.0.1."""
    bot = SupportBot(settings, channels=[channel], encoder=encoder)
    await bot.start(progress=False)
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            yield bot, http
    finally:
        await bot.close()


class TelegramHarness(Harness):
    """aiogram in webhook mode: updates POSTed with the secret token; replies to the stand-in Bot API."""

    name, chat_id, customer_id = "telegram", str(TELEGRAM_USER), str(TELEGRAM_USER)
    _failures: ClassVar[dict[str, BotApiFailure]] = {
        "rate_limited": BotApiFailure.too_many_requests(retry_after=RETRY_AFTER),
        "server_error": BotApiFailure.server_error(),
        "blocked": BotApiFailure.blocked(),
    }

    def __init__(
        self, bot: SupportBot, channel: Channel, http: httpx.AsyncClient, api: TelegramApiStub
    ) -> None:
        super().__init__(bot, channel)
        self.http, self.api = http, api

    @classmethod
    @asynccontextmanager
    async def running(cls, env: Env) -> AsyncIterator[TelegramHarness]:
        webhook = {
            "mode": "webhook",
            "webhook_url": "https://support.example.com/webhooks/telegram",
            "webhook_secret": SECRET,
        }
        settings = env.settings(telegram=telegram_settings(env.telegram_api.url, **webhook))
        channel = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,))
        async with served(settings, channel, env.encoder) as (bot, http):
            yield cls(bot, channel, http, env.telegram_api)

    async def _post(self, text: str, number: int, secret: str) -> httpx.Response:
        update = {**text_update(text, language="en", message_id=number), "update_id": 700_000_000 + number}
        return await self.http.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: secret})

    async def deliver(self, text: str, number: int) -> None:
        response = await self._post(text, number, SECRET)  # answered once the update is handled
        assert response.status_code == 200, response.text

    async def deliver_forged(self, text: str, number: int) -> int:
        return (await self._post(text, number, "a-guessed-secret")).status_code

    async def sent(self) -> list[Sent]:
        return [
            Sent(str(call["chat_id"]), call["visible"], tuple(title for title, _ in buttons_of(call)))
            for call in self.api.sent()
        ]

    def fail_next_sends(self, *failures: str) -> None:
        self.api.fail_next("sendMessage", *(self._failures[failure] for failure in failures))


class WhatsAppHarness(Harness):
    """Signed Cloud API webhooks POSTed like Meta's; replies to the stand-in Graph API."""

    name, chat_id, customer_id = "whatsapp", WHATSAPP_USER, WHATSAPP_USER
    _failures: ClassVar[dict[str, GraphFailure]] = {
        "rate_limited": GraphFailure(429, 130429, "Rate limit hit", {"Retry-After": str(RETRY_AFTER)}),
        "server_error": GraphFailure(500, 131000, "Something went wrong"),
        "blocked": GraphFailure(400, 131026, "Message undeliverable"),
    }

    def __init__(
        self, bot: SupportBot, channel: WhatsAppChannel, http: httpx.AsyncClient, graph: GraphApiStub
    ) -> None:
        super().__init__(bot, channel)
        self.whatsapp, self.http, self.graph = channel, http, graph

    @classmethod
    @asynccontextmanager
    async def running(cls, env: Env) -> AsyncIterator[WhatsAppHarness]:
        graph, base_url = env.graph_api
        settings = env.settings(whatsapp=whatsapp_settings(base_url).model_dump())
        channel = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0, 0.0))
        async with served(settings, channel, env.encoder) as (bot, http):
            yield cls(bot, channel, http, graph)

    async def _post(self, text: str, number: int, signature: str | None) -> httpx.Response:
        body = json.dumps(text_webhook(text, f"wamid.contract-{number}")).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(body)}
        return await self.http.post(WHATSAPP_WEBHOOK, content=body, headers=headers)

    async def deliver(self, text: str, number: int) -> None:
        response = await self._post(text, number, None)
        assert response.status_code == 200, response.text
        await self.whatsapp.drain()  # acknowledged first, handled in the background

    async def deliver_forged(self, text: str, number: int) -> int:
        return (await self._post(text, number, "sha256=" + "0" * 64)).status_code

    async def sent(self) -> list[Sent]:
        return [Sent(body["to"], *_whatsapp_view(body)) for body in self.graph.sends]

    def fail_next_sends(self, *failures: str) -> None:
        self.graph.fail_next(*(self._failures[failure] for failure in failures))


def _whatsapp_view(body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    if body["type"] == "text":
        return body["text"]["body"], ()
    interactive = body["interactive"]
    action = interactive["action"]
    if interactive["type"] == "button":
        return interactive["body"]["text"], tuple(b["reply"]["title"] for b in action["buttons"])
    rows = [row for section in action["sections"] for row in section["rows"]]
    return interactive["body"]["text"], tuple(row["title"] for row in rows)


class WebchatHarness(Harness):
    """The widget's JSON API: messages POSTed with the visitor id; replies read back from the stored chat."""

    name, chat_id, customer_id = "webchat", "v-contract-0123456789", "v-contract-0123456789"
    no_platform_api = "the web chat calls no platform API: replies are stored and the browser reads them"

    def __init__(self, bot: SupportBot, channel: Channel, http: httpx.AsyncClient) -> None:
        super().__init__(bot, channel)
        self.http = http

    @classmethod
    @asynccontextmanager
    async def running(cls, env: Env) -> AsyncIterator[WebchatHarness]:
        settings = env.settings()
        async with served(settings, WebchatChannel(settings.channels.webchat), env.encoder) as (bot, http):
            yield cls(bot, bot.channels["webchat"], http)

    async def _post(self, text: str, number: int, visitor: str) -> httpx.Response:
        body = {"text": text, "client_message_id": f"contract-{number}"}
        return await self.http.post("/api/v1/webchat/messages", json=body, headers={"X-Visitor-Id": visitor})

    async def deliver(self, text: str, number: int) -> None:
        response = await self._post(text, number, self.customer_id)
        assert response.status_code == 200, response.text

    async def deliver_forged(self, text: str, number: int) -> int:
        return (await self._post(text, number, "guessable")).status_code  # not a random 16-64 character id

    async def sent(self) -> list[Sent]:
        response = await self.http.get(
            "/api/v1/webchat/messages", params={"after": 0}, headers={"X-Visitor-Id": self.customer_id}
        )
        assert response.status_code == 200, response.text
        return [
            Sent(self.chat_id, m["text"], tuple(b["title"] for b in m["buttons"]))
            for m in response.json()["messages"]
            if m["direction"] == "out"
        ]


class TerminalHarness(Harness):
    """`supportbot chat`: a typed line parsed by the channel; replies printed to its stream."""

    name, chat_id, customer_id = "terminal", "local", "local"
    no_platform_ids = "a typed line has no platform message id: the same line twice is two messages"
    no_auth = "the terminal reads its own user's keyboard: there is nobody to authenticate"
    no_platform_api = "the terminal prints its replies: no platform API to throttle or refuse them"

    def __init__(self, bot: SupportBot, channel: TerminalChannel, output: io.StringIO) -> None:
        super().__init__(bot, channel)
        self.terminal, self.output = channel, output

    @classmethod
    @asynccontextmanager
    async def running(cls, env: Env) -> AsyncIterator[TerminalHarness]:
        output = io.StringIO()
        channel = TerminalChannel(stream=output)
        bot = SupportBot(env.settings(), channels=[channel], encoder=env.encoder)
        await bot.start(progress=False)
        try:
            yield cls(bot, channel, output)
        finally:
            await bot.close()

    async def deliver(self, text: str, number: int) -> None:
        await self.bot.inbox.receive(self.terminal.parse(text + "\n", customer_id=self.customer_id))

    async def sent(self) -> list[Sent]:
        replies: list[Sent] = []
        for block in re.split(r"^bot> ", self.output.getvalue(), flags=re.MULTILINE)[1:]:
            lines = block.rstrip("\n").split("\n")
            buttons = tuple(m.group(1) for line in lines if (m := re.match(r"^ {5}\[\d+\] (.*)$", line)))
            text = "\n".join(line for line in lines if not re.match(r"^ {5}\[\d+\] ", line))
            replies.append(Sent(self.chat_id, text, buttons))
        return replies


HARNESSES: list[type[Harness]] = [TelegramHarness, WhatsAppHarness, WebchatHarness, TerminalHarness]


@pytest.fixture(params=HARNESSES, ids=[harness.name for harness in HARNESSES])
async def harness(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    encoder: E5Encoder,
    delivery_kb: Path,
    telegram_api: TelegramApiStub,
    graph_api: tuple[GraphApiStub, str],
) -> AsyncIterator[Harness]:
    """Each channel in turn, running in the service over a fresh SQLite database."""
    env = Env(make_settings, encoder, delivery_kb, telegram_api, graph_api)
    async with request.param.running(env) as running:
        yield running


# --- what the service stored -------------------------------------------------------------------------


async def customer_of(harness: Harness) -> Customer | None:
    async with harness.bot.database.session() as session:
        query = select(Customer).where(
            Customer.channel == harness.name, Customer.external_id == harness.customer_id
        )
        return (await session.execute(query)).scalar_one_or_none()


async def messages(harness: Harness, direction: str) -> list[Message]:
    async with harness.bot.database.session() as session:
        query = select(Message).where(Message.direction == direction).order_by(Message.id)
        return list((await session.execute(query)).scalars())


async def conversation_of(harness: Harness) -> Conversation:
    async with harness.bot.database.session() as session:
        found = (
            (await session.execute(select(Conversation).order_by(Conversation.id.desc()))).scalars().first()
        )
        assert found is not None
        return found


async def store_reply(harness: Harness, reply: OutgoingReply) -> int:
    """Store a reply in the customer's conversation (as an agent's message is) and return its id."""
    async with harness.bot.database.session() as session:
        conversation = await session.get(Conversation, (await conversation_of(harness)).id)
        assert conversation is not None
        return (await MessageRepository(session).add_outbound(conversation, reply, sender="agent")).id


async def stored(harness: Harness, message_id: int) -> Message:
    async with harness.bot.database.session() as session:
        found = await session.get(Message, message_id)
        assert found is not None
        return found


async def make_due(harness: Harness, message_id: int) -> None:
    """Let time pass until the reply's next attempt is due."""
    async with harness.bot.database.session() as session:
        await session.execute(
            update(Message).where(Message.id == message_id).values(next_attempt_at=datetime.now(UTC))
        )


async def target_of(harness: Harness) -> DeliveryTarget:
    conversation = await conversation_of(harness)
    return DeliveryTarget(
        harness.name, conversation.chat_id, harness.customer_id, conversation.id, conversation.language
    )


def as_utc(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the contract --------------------------------------------------------------------------------------


async def test_a_text_payload_becomes_one_message_and_its_reply_goes_back_to_the_chat(
    harness: Harness,
) -> None:
    await harness.deliver(QUESTION, 1)
    customer, conversation = await customer_of(harness), await conversation_of(harness)
    assert customer is not None and customer.external_id == harness.customer_id
    assert (conversation.channel, conversation.chat_id) == (harness.name, harness.chat_id)
    [inbound] = await messages(harness, "in")
    assert inbound.text == QUESTION and inbound.conversation_id == conversation.id
    outbound = await messages(harness, "out")
    assert outbound and all(m.status == "sent" for m in outbound)
    sent = await harness.sent()
    assert [(s.chat_id, s.text) for s in sent] == [(harness.chat_id, m.text) for m in outbound]


async def test_a_reply_with_buttons_is_sent_with_its_buttons(harness: Harness) -> None:
    await harness.deliver(QUESTION, 1)
    buttons = (Button("Delivery time", "entry:delivery_time"), Button("Talk to a person", "human"))
    message_id = await store_reply(harness, OutgoingReply("Which one do you mean?", buttons))
    assert await harness.bot.outbox.deliver() == 1
    assert (await stored(harness, message_id)).status == "sent"
    last = (await harness.sent())[-1]
    assert last == Sent(harness.chat_id, "Which one do you mean?", ("Delivery time", "Talk to a person"))


async def test_a_duplicate_delivery_is_answered_once(harness: Harness) -> None:
    if harness.no_platform_ids:
        pytest.skip(harness.no_platform_ids)
    await harness.deliver(QUESTION, 1)
    answered = await harness.sent()
    await harness.deliver(QUESTION, 1)  # the platform delivers the same message again
    assert len(await messages(harness, "in")) == 1
    assert await harness.sent() == answered and answered


async def test_bad_authentication_is_refused_without_processing(harness: Harness) -> None:
    if harness.no_auth:
        pytest.skip(harness.no_auth)
    assert await harness.deliver_forged(QUESTION, 1) in (401, 403, 422)
    assert await customer_of(harness) is None
    assert await messages(harness, "in") == [] and await harness.sent() == []


async def test_429_and_5xx_are_retried_by_the_outbox_honouring_retry_after(harness: Harness) -> None:
    if harness.no_platform_api:
        pytest.skip(harness.no_platform_api)
    await harness.deliver(QUESTION, 1)
    before = len(await harness.sent())
    harness.fail_next_sends("rate_limited")
    with pytest.raises(RateLimited) as limited:
        await harness.channel.send(await target_of(harness), OutgoingReply("Are you there?"))
    assert limited.value.retry_after == RETRY_AFTER and not limited.value.permanent

    message_id = await store_reply(harness, OutgoingReply("Your parcel left the warehouse today."))
    harness.fail_next_sends("rate_limited", "server_error")
    assert await harness.bot.outbox.deliver() == 0
    row = await stored(harness, message_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert as_utc(row.next_attempt_at) > datetime.now(UTC) + timedelta(seconds=RETRY_AFTER - 5)
    assert await harness.bot.outbox.deliver() == 0  # not due yet: nothing is sent early
    await make_due(harness, message_id)
    assert await harness.bot.outbox.deliver() == 0  # the 5xx: retried later, with the outbox's backoff
    row = await stored(harness, message_id)
    assert (row.status, row.attempts) == ("pending", 2)
    await make_due(harness, message_id)
    assert await harness.bot.outbox.deliver() == 1
    row = await stored(harness, message_id)
    assert (row.status, row.attempts) == ("sent", 3)
    sent = await harness.sent()
    assert [s.text for s in sent[before:]] == ["Your parcel left the warehouse today."]


async def test_a_recipient_who_blocked_the_bot_is_marked_blocked(harness: Harness) -> None:
    if harness.no_platform_api:
        pytest.skip(harness.no_platform_api)
    await harness.deliver(QUESTION, 1)
    before = await harness.sent()
    harness.fail_next_sends("blocked")
    with pytest.raises(RecipientUnavailable) as refused:
        await harness.channel.send(await target_of(harness), OutgoingReply("Are you there?"))
    assert refused.value.permanent

    first = await store_reply(harness, OutgoingReply("Your parcel left the warehouse today."))
    second = await store_reply(harness, OutgoingReply("It arrives on Friday."))
    harness.fail_next_sends("blocked")
    assert await harness.bot.outbox.deliver() == 0
    customer = await customer_of(harness)
    assert customer is not None and customer.blocked
    assert (await stored(harness, first)).status == (await stored(harness, second)).status == "failed"
    assert (await stored(harness, second)).last_error == "customer blocked the bot"  # never tried
    assert await harness.sent() == before
