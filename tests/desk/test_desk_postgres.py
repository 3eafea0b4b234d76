"""Two `supportbot run` processes on one PostgreSQL database never make two topics for one customer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.adapters.telegram import TelegramChannel
from bot.config import Settings
from bot.desk.sender import create_topic
from bot.desk.service import TelegramDesk
from bot.desk.store import purge, topic_of_customer
from bot.desk.transport import DeskApi
from bot.handoff.assignment import audit
from bot.handoff.live import LiveHandoff
from bot.storage.database import Database
from bot.storage.models import Conversation, Customer, DeskPost, DeskTopic, utcnow
from tests.support.desk import DESK
from tests.support.services import POSTGRES_URL, postgres_schema
from tests.support.telegram import telegram_settings
from tests.support.telegram_api import TelegramApiStub

pytestmark = pytest.mark.postgres


@pytest.fixture
async def two_processes() -> AsyncIterator[tuple[Database, Database]]:
    """Two engines (as two processes have) on one fresh PostgreSQL schema."""
    schema, drop = await postgres_schema()
    args = {"server_settings": {"search_path": schema}}
    first, second = Database(POSTGRES_URL, connect_args=args), Database(POSTGRES_URL, connect_args=args)
    await first.migrate()
    yield first, second
    await first.close()
    await second.close()
    await drop()


async def handed_off(database: Database, name: str) -> int:
    """A customer whose conversation was just queued (the audit row the desk follows); its customer id."""
    async with database.session() as session:
        customer = Customer(channel="whatsapp", external_id=name, display_name=name, profile={})
        session.add(customer)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, channel="whatsapp", chat_id=name, state="waiting", language="en"
        )
        session.add(conversation)
        await session.flush()
        audit(session, conversation.id, "queued", "bot", reason="human_request", priority=0)
        return customer.id


async def test_two_desks_on_one_database_make_one_topic_and_one_card(
    two_processes: tuple[Database, Database],
    make_settings: Callable[..., Settings],
    telegram_api: TelegramApiStub,
) -> None:
    settings = make_settings(
        channels={"telegram": telegram_settings(telegram_api.url, agent_desk={"chat_id": DESK})}
    )
    telegram_api.topic_delay = 0.3  # both processes are inside createForumTopic at once, if both call it
    desks, channels = [], []
    for database in two_processes:
        channel = TelegramChannel(settings.channels.telegram)
        channels.append(channel)
        desks.append(
            TelegramDesk(settings.channels.telegram.agent_desk, LiveHandoff(settings, database), channel)
        )
    for desk in desks:  # the cursor starts at the newest event: made before the handoff
        await desk.tick()
    customer_id = await handed_off(two_processes[0], "48600100300")
    try:
        # the desks' rounds at once: one holds the lease, the other waits for its turn
        await asyncio.gather(*(desk.tick() for desk in desks))
        await asyncio.gather(*(desk.tick() for desk in desks))
        # and the bare creators, without the lease, racing for one topic row
        other = await handed_off(two_processes[0], "48600100301")
        async with two_processes[0].session() as session:
            row = await topic_of_customer(session, other, DESK, "Second · WhatsApp · en")
        apis = [DeskApi(channel, DESK) for channel in channels]
        made = await asyncio.gather(
            *(create_topic(database, api, row) for database, api in zip(two_processes, apis, strict=True))
        )
    finally:
        for channel in channels:
            await channel.bot.session.close()
    async with two_processes[1].session() as session:
        topics = list((await session.execute(select(DeskTopic).order_by(DeskTopic.id))).scalars())
        cards = list((await session.execute(select(DeskPost).where(DeskPost.kind == "card"))).scalars())
    assert sorted(made) == [False, True]
    assert [t.customer_id for t in topics] == [customer_id, other]
    assert all(t.thread_id for t in topics)
    assert len(telegram_api.ok_calls("createForumTopic")) == 2  # one per customer, never two for one
    assert [c.status for c in cards] == ["sent"]
    assert len([p for p in telegram_api.sent(DESK) if str(p["visible"]).startswith("#")]) == 1
    async with two_processes[1].session() as session:  # sent posts are forgotten after a while
        assert await purge(session, utcnow() + timedelta(days=8)) == len(cards)
        assert not (await session.execute(select(DeskPost).where(DeskPost.kind == "card"))).first()
