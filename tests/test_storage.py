"""Repositories against real SQLite and PostgreSQL (the `database` fixture runs both)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from bot.messages import OutgoingReply
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Customer, Message, utcnow
from bot.storage.repositories import ConversationRepository, MessageRepository
from tests.conftest import incoming


async def test_one_open_conversation_per_customer_and_channel(database: Database) -> None:
    async with database.session() as session:
        repo = ConversationRepository(session)
        customer = await repo.upsert_customer(incoming("hi", display_name="Anna"))
        first = await repo.active_conversation(customer, "c1")
        again = await repo.active_conversation(customer, "c1")
        assert first.id == again.id and first.state == State.BOT
        assert customer.display_name == "Anna"


async def test_inbound_messages_are_deduplicated_by_platform_id(database: Database) -> None:
    message = incoming("hello", msg_id="m-1")
    async with database.session() as session:
        repo = ConversationRepository(session)
        conversation = await repo.active_conversation(await repo.upsert_customer(message), "c1")
        messages = MessageRepository(session)
        assert await messages.add_inbound(conversation, message) is not None
        assert await messages.add_inbound(conversation, message) is None
        assert await messages.count(conversation.id) == 1


async def test_concurrent_redeliveries_store_one_message(database: Database) -> None:
    message = incoming("hello", msg_id="race")
    async with database.session() as session:
        repo = ConversationRepository(session)
        conversation = await repo.active_conversation(await repo.upsert_customer(message), "c1")
        conversation_id = conversation.id

    async def store() -> bool:
        async with database.session() as session:
            repo = ConversationRepository(session)
            conv = await repo.get(conversation_id)
            assert conv is not None
            return await MessageRepository(session).add_inbound(conv, message) is not None

    outcomes = await asyncio.gather(*(store() for _ in range(5)), return_exceptions=True)
    assert sum(1 for o in outcomes if o is True) == 1
    async with database.session() as session:
        assert await MessageRepository(session).count(conversation_id) == 1


async def test_customer_upsert_is_race_safe(database: Database) -> None:
    async def upsert() -> int:
        async with database.session() as session:
            return (await ConversationRepository(session).upsert_customer(incoming(customer="same"))).id

    ids = await asyncio.gather(*(upsert() for _ in range(4)), return_exceptions=True)
    assert len({i for i in ids if isinstance(i, int)}) == 1
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == 1


async def test_outbox_due_failed_and_sent(database: Database) -> None:
    async with database.session() as session:
        repo = ConversationRepository(session)
        conversation = await repo.active_conversation(await repo.upsert_customer(incoming()), "c1")
        messages = MessageRepository(session)
        row = await messages.add_outbound(conversation, OutgoingReply("hello"))
        assert [m.id for m in await messages.due_outbound(utcnow())] == [row.id]
        await messages.mark_attempt_failed(row, "HTTP 429", retry_in=30, give_up=False)
        assert await messages.due_outbound(utcnow()) == []
        assert [m.id for m in await messages.due_outbound(utcnow() + timedelta(seconds=31))] == [row.id]
        await messages.mark_sent(row, "p-9")
    async with database.session() as session:
        stored = await session.get(Message, row.id)
        assert stored is not None
        assert (stored.status, stored.attempts, stored.platform_message_id) == ("sent", 2, "p-9")


async def test_transitions_are_checked_and_audited(database: Database) -> None:
    async with database.session() as session:
        repo = ConversationRepository(session)
        conversation = await repo.active_conversation(await repo.upsert_customer(incoming()), "c1")
        await repo.transition(conversation, State.WAITING, "bot", "human_request")
        await repo.transition(conversation, State.WITH_AGENT, "agent:3", "assigned")
        await repo.transition(conversation, State.RESOLVED, "agent:3", "done")
        events = [e for e in await repo.events(conversation.id) if e.kind == "state_changed"]
        assert [(e.data["from"], e.data["to"], e.actor) for e in events] == [
            ("bot", "waiting", "bot"),
            ("waiting", "with_agent", "agent:3"),
            ("with_agent", "resolved", "agent:3"),
        ]
        assert conversation.resolved_at is not None
        new = await repo.active_conversation(await repo.upsert_customer(incoming()), "c1")
        assert new.id != conversation.id and new.state == State.BOT


async def test_migrations_are_idempotent(database: Database) -> None:
    await database.migrate()
    async with database.session() as session:
        assert await ConversationRepository(session).count_in_state(State.WAITING) == 0
