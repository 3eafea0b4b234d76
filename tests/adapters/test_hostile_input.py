"""Hostile payloads at the channels (issue 16): a lone UTF-16 surrogate is repaired where every channel
builds its message, stored and answered; values from outside never forge a log line."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.adapters.telegram import TelegramChannel
from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Conversation, Message
from bot.web.app import create_app
from tests.support.graph_api import GraphApiStub
from tests.support.handoff import wait_for
from tests.support.server import LiveServer
from tests.support.telegram import SECRET, telegram_settings, text_update
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import WEBHOOK, sign, text_webhook, whatsapp_settings

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

LONE = "\ud800"  # valid in JSON ("\\ud800"), not in UTF-8: the model, the database and the log refuse it


class Channels:
    def __init__(
        self, bot: SupportBot, http: httpx.AsyncClient, telegram: TelegramApiStub, graph: GraphApiStub
    ):
        self.bot, self.http, self.telegram, self.graph = bot, http, telegram, graph

    async def inbound(self, channel: str) -> list[Message]:
        async with self.bot.database.session() as session:
            query = (
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.direction == "in", Conversation.channel == channel)
            )
            return list((await session.execute(query.order_by(Message.id))).scalars())

    async def telegram_post(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        return await self.http.post("/webhooks/telegram", content=body, headers=headers)


@pytest.fixture
async def channels(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
    graph_api: tuple[GraphApiStub, str],
    delivery_kb: Path,
) -> AsyncIterator[Channels]:
    """Telegram (webhook), WhatsApp and the web chat on one service, against the stand-in platforms."""
    stub, graph_base = graph_api
    webhook = {"mode": "webhook", "webhook_url": "https://support.example.com/webhooks/telegram"}
    settings = make_settings(
        kb={"path": str(delivery_kb)},
        channels={
            "telegram": telegram_settings(telegram_api.url, **webhook, webhook_secret=SECRET),
            "whatsapp": whatsapp_settings(graph_base).model_dump(),
        },
    )
    telegram = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,))
    whatsapp = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0,))
    webchat = WebchatChannel(settings.channels.webchat)
    bot = SupportBot(settings, channels=[telegram, whatsapp, webchat], encoder=encoder, database=database)
    await bot.start(progress=False)
    try:
        async with LiveServer(create_app(bot, start=False)) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                yield Channels(bot, http, telegram_api, stub)
    finally:
        await whatsapp.stop()
        await bot.close()


# --- 2. a lone surrogate: repaired once for every channel, stored, answered -------------------------------


async def test_a_lone_surrogate_is_repaired_stored_and_answered_on_every_channel(channels: Channels) -> None:
    update = {**text_update(f"Сколько идёт доставка? {LONE}", message_id=2001), "update_id": 880000001}
    telegram = await channels.telegram_post(json.dumps(update).encode())  # json escapes it as \ud800
    assert telegram.status_code == 200, telegram.text  # was 500: Telegram redelivered it forever
    [stored] = await channels.inbound("telegram")
    assert stored.text == "Сколько идёт доставка? \ufffd"
    assert len(channels.telegram.sent()) == 1

    body = json.dumps(text_webhook(f"Jak długo trwa dostawa? {LONE}", "wamid.lone")).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}
    assert (await channels.http.post(WEBHOOK, content=body, headers=headers)).status_code == 200
    whatsapp = channels.bot.channels["whatsapp"]
    assert isinstance(whatsapp, WhatsAppChannel)
    await whatsapp.drain()
    [stored] = await channels.inbound("whatsapp")
    assert stored.text == "Jak długo trwa dostawa? \ufffd"
    assert len(await wait_for(lambda: channels.graph.sends, what="the WhatsApp reply")) == 1

    posted = await channels.http.post(
        "/api/v1/webchat/messages",
        content=json.dumps({"text": f"How long is delivery? {LONE}", "name": f"Anna {LONE}"}),
        headers={"Content-Type": "application/json", "X-Visitor-Id": "visitor-0123456789abcdef"},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["replies"]
    [stored] = await channels.inbound("webchat")
    assert stored.text == "How long is delivery? \ufffd"


# --- 10. log forging: every value from outside is quoted --------------------------------------------------


async def test_values_from_outside_cannot_forge_a_log_line(
    channels: Channels, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "1\nCRITICAL bot.app: database dropped by admin"
    caplog.set_level(logging.DEBUG)
    ignored = {"update_id": forged, "poll": {"id": forged}}  # an update kind we ignore, logged with its id
    assert (await channels.telegram_post(json.dumps(ignored).encode())).status_code == 200
    status = json.dumps({"update_id": 5, "message": {"message_id": forged, "chat": {"id": forged}}})
    await channels.telegram_post(status.encode())
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {"value": {"statuses": [{"id": forged, "status": forged, "recipient_id": forged}]}}
                    ]
                }
            ],
        }
    ).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)}
    await channels.http.post(WEBHOOK, content=body, headers=headers)
    verify = {"hub.mode": forged, "hub.verify_token": forged, "hub.challenge": forged}
    await channels.http.get(WEBHOOK, params=verify)
    lines = [line for record in caplog.records for line in record.getMessage().splitlines()]
    assert not [line for line in lines if line.startswith("CRITICAL")], lines
    assert any("CRITICAL" in line for line in lines)  # it was logged, quoted on one line
