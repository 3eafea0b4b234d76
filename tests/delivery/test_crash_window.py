"""After a crash, only sends truly in flight may go out twice (issue 16, item 6): each send is marked, with the
platform's message id, as soon as it returns, in its own commit, never waiting for other sends' marks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select

from bot.adapters.base import DeliveryTarget, Inbox, Received
from bot.adapters.webhook import WebhookChannel
from bot.app import SupportBot
from bot.config import SpoolSettings
from bot.delivery import outbox as outbox_module
from bot.delivery.outbox import Outbox
from bot.delivery.spool import InboundSpool
from bot.errors import SendError
from bot.messages import IncomingMessage, OutgoingReply
from bot.storage.database import Database
from bot.storage.models import Message
from bot.storage.repositories import MessageRepository
from tests.delivery.test_outbox import make_due
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import wait_for


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_send_is_marked_at_once_whatever_other_marks_are_doing(
    bot: SupportBot, channel: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel.fail_next += [SendError("timeout"), SendError("timeout")]  # both replies wait in the outbox
    first = await bot.receive(incoming("How can I pay for my order?", customer="first"))
    second = await bot.receive(incoming("How long does delivery take?", customer="second"))
    assert first.conversation_id is not None and second.conversation_id is not None
    [(held, _)] = first.replies
    [(other, _)] = second.replies
    await make_due(bot)

    gate = asyncio.Event()  # the first reply's mark hangs (a slow commit, a process about to die)
    mark_sent = MessageRepository.mark_sent

    async def slow_for_the_first(self: MessageRepository, sent: list[tuple[int, str | None]]) -> None:
        if any(message_id == held for message_id, _ in sent):
            await gate.wait()
        await mark_sent(self, sent)

    monkeypatch.setattr(MessageRepository, "mark_sent", slow_for_the_first)
    first_delivery = asyncio.create_task(bot.outbox.deliver(first.conversation_id))
    await wait_for(
        lambda: any(target.message_id == held for target, _ in channel.sent), what="the first send"
    )
    # (a mark that waited for the hanging one would never come back: bounded so the test fails instead)
    assert await asyncio.wait_for(bot.outbox.deliver(second.conversation_id), timeout=10) == 1

    async def status(message_id: int) -> tuple[str, str | None]:
        async with bot.database.session() as session:
            row = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
            return row.status, row.platform_message_id

    # the second reply is marked sent, with its platform id, while the first one's mark still hangs
    sent_status, platform_id = await status(other)
    assert sent_status == "sent" and platform_id
    assert (await status(held))[0] == "pending"
    gate.set()
    assert await first_delivery == 1
    assert (await status(held))[0] == "sent"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_dead_process_s_spooled_bodies_are_taken_over_within_seconds(database: Database) -> None:
    """Two processes on one database: the live one's heartbeat keeps its body; the dead one's is taken over."""
    settings = SpoolSettings(grace_seconds=0.6, replay_interval_seconds=0.1)
    channels = {"whatsapp": ReplayCounter()}
    alive, dead, survivor = (InboundSpool(database, channels, settings) for _ in range(3))
    kept_alive = await alive.keep("whatsapp", b'{"alive": true}')
    await dead.keep("whatsapp", b'{"dead": true}')
    heartbeat = asyncio.create_task(alive.heartbeat())  # `dead` has none: it was killed after the 200
    try:
        inbox = cast(Inbox, None)  # ReplayCounter needs no inbox
        # the survivor's replay takes the dead process's body once its claim runs out, and only that one
        await wait_for(lambda: survivor.replay(inbox), within=10, what="the dead process's body replayed")
        for _ in range(10):  # rounds over three claim lengths: the live process's body stays its own
            await asyncio.sleep(0.2)
            assert await survivor.replay(inbox) == 0
        assert channels["whatsapp"].bodies == [b'{"dead": true}']
    finally:
        heartbeat.cancel()
    await alive.processed(kept_alive)
    assert (await survivor.counts()).waiting == 0


class ReplayCounter(RecordingChannel):
    """A channel that records the bodies replayed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    async def replay(self, inbox: Inbox, body: bytes) -> str | None:
        self.bodies.append(body)
        return None


class SlowFirst:
    """An inbox whose first message takes long to handle (a slow model call), recording what it handled."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.first_started = asyncio.Event()
        self.release = asyncio.Event()
        self.spool = self

    async def receive(self, message: IncomingMessage) -> Received:
        if not self.handled and not self.first_started.is_set():
            self.first_started.set()
            await self.release.wait()
        self.handled.append(message.text)
        return Received()

    async def keep(self, channel: str, body: bytes) -> int:
        return 1

    async def processed(self, spool_id: int, error: str | None = None) -> None:
        return None


class JsonWebhook(WebhookChannel[IncomingMessage]):
    name = "jsonhook"
    webhook_path = "/webhooks/jsonhook"

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def items(self, payload: dict[str, Any]) -> list[IncomingMessage]:
        return [IncomingMessage(self.name, payload["chat"], payload["chat"], payload["text"])]

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        return None


async def test_one_chat_s_webhooks_are_handled_in_arrival_order() -> None:
    channel, inbox = JsonWebhook(retry_delays=()), SlowFirst()
    for text, chat in (("first", "anna"), ("second", "anna"), ("other chat", "bob")):
        body = json.dumps({"chat": chat, "text": text}).encode()
        assert (await channel.take(cast(Inbox, inbox), {}, body)).status_code == 200
        if text == "first":
            await inbox.first_started.wait()
    await wait_for(lambda: inbox.handled == ["other chat"], what="another chat, not held up")
    inbox.release.set()
    await channel.drain()
    assert inbox.handled == ["other chat", "first", "second"]  # anna's second waited for her first
    assert channel._chats == {}


class Hanging(RecordingChannel):
    """A send that never returns (the process dies in the middle of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def send(self, target: DeliveryTarget, reply: OutgoingReply) -> str | None:
        self.started.set()
        await asyncio.Event().wait()
        return None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_live_sender_keeps_its_lease_and_a_dead_one_s_replies_go_out_soon(
    bot: SupportBot, channel: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "LEASE", timedelta(seconds=0.6))
    channel.fail_next.append(SendError("timeout"))
    result = await bot.receive(incoming("How can I pay for my order?", customer="c"))
    [(reply, _)] = result.replies
    await make_due(bot)
    hanging = Hanging()
    first = Outbox(bot.database, {"test": hanging}, bot.settings.outbox)
    second = Outbox(bot.database, {"test": channel}, bot.settings.outbox)
    heartbeat = asyncio.create_task(first.heartbeat())
    sending = asyncio.create_task(first.deliver())
    await hanging.started.wait()
    for _ in range(8):  # over three lease lengths: the live sender's heartbeat keeps the reply its own
        await asyncio.sleep(0.25)
        assert await second.deliver() == 0
    heartbeat.cancel()  # the first process dies mid-send
    sending.cancel()
    await wait_for(second.deliver, within=10, what="the dead sender's reply sent by another")
    assert [target.message_id for target, _ in channel.sent] == [reply]
