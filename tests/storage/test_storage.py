"""Repositories against real SQLite and PostgreSQL (the `database` fixture runs both)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CursorResult, event, func, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.messages import OutgoingReply
from bot.states import State
from bot.storage.database import Database, alembic_config
from bot.storage.models import Base, Customer, Message, utcnow
from bot.storage.repositories import ConversationRepository, MessageRepository
from bot.storage.sqlite_driver import OneHopConnection
from tests.support.channel import incoming


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
    async with database.session() as session:
        await MessageRepository(session).mark_sent([(row.id, "p-9")])
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


async def _migrate(database: Database, revision: str, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def _indexes(database: Database) -> dict[str, set[str]]:
    """Index name -> "table(columns)" of the tables the numbers read."""

    def read(connection: Connection) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for table in ("conversations", "messages", "events"):
            for index in inspect(connection).get_indexes(table):
                found.setdefault(str(index["name"]), set()).add(
                    f"{table}({','.join(map(str, index['column_names']))})"
                )
        return found

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


STATS_INDEXES = {
    "ix_conversations_created_at": {"conversations(created_at)"},
    "ix_conversations_handoff_at": {"conversations(handoff_at)"},
    "ix_conversations_resolved_at": {"conversations(resolved_at)"},
    "ix_conversations_sla_breached_at": {"conversations(sla_breached_at)"},
    "ix_messages_created_at": {"messages(created_at)"},
    "ix_events_kind_created_at": {"events(kind,created_at)"},
}


async def test_the_numbers_time_windows_are_indexed_and_migration_0003_goes_both_ways(
    database: Database,
) -> None:
    """bot/insights/stats.py and bot/content/misses.py read windows of created_at / handoff_at / resolved_at / sla_breached_at."""
    migrated = await _indexes(database)
    assert {name: migrated.get(name) for name in STATS_INDEXES} == STATS_INDEXES
    assert "ix_events_kind" not in migrated  # ix_events_kind_created_at starts with kind: it does that job

    await _migrate(database, "0002", down=True)
    before = await _indexes(database)
    assert not set(STATS_INDEXES) & set(before)
    assert before["ix_events_kind"] == {"events(kind)"}

    await _migrate(database, "0003")
    again = await _indexes(database)
    assert {name: again.get(name) for name in STATS_INDEXES} == STATS_INDEXES
    assert "ix_events_kind" not in again
    await _migrate(database, "head")


async def test_migration_0004_ties_tickets_to_their_session_both_ways(database: Database) -> None:
    def columns(connection: Connection) -> set[str]:
        return {str(column["name"]) for column in inspect(connection).get_columns("agent_tokens")}

    def parents(connection: Connection) -> list[tuple[list[str], str, list[str]]]:
        keys = inspect(connection).get_foreign_keys("agent_tokens")
        return [(k["constrained_columns"], k["referred_table"], k["referred_columns"]) for k in keys]

    await _migrate(database, "0003", down=True)
    async with database.engine.connect() as connection:
        assert "parent_id" not in await connection.run_sync(columns)
    await _migrate(database, "head")
    async with database.engine.connect() as connection:
        assert "parent_id" in await connection.run_sync(columns)
        assert (["parent_id"], "agent_tokens", ["id"]) in await connection.run_sync(parents)


async def test_migration_0005_adds_the_inbound_spool_both_ways(database: Database) -> None:
    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    await _migrate(database, "0004", down=True)
    async with database.engine.connect() as connection:
        assert "inbound_spool" not in await connection.run_sync(tables)
    await _migrate(database, "head")
    async with database.engine.connect() as connection:
        assert "inbound_spool" in await connection.run_sync(tables)


async def test_the_models_match_the_migrations(database: Database) -> None:
    """What the ORM declares (columns, indexes, constraints) is what the migrations built."""

    def differences(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_sent_replies_are_marked_in_one_statement(database: Database) -> None:
    async with database.session() as session:
        repo = ConversationRepository(session)
        conversation = await repo.active_conversation(await repo.upsert_customer(incoming()), "c1")
        messages = MessageRepository(session)
        rows = [await messages.add_outbound(conversation, OutgoingReply(f"r{i}")) for i in range(3)]
        await messages.mark_attempt_failed(rows[1], "HTTP 500", retry_in=0, give_up=False)
    async with database.session() as session:
        await MessageRepository(session).mark_sent([(rows[0].id, "p-1"), (rows[1].id, None)])
    async with database.session() as session:
        stored = {m.id: m for m in (await session.execute(select(Message))).scalars()}
    assert (
        stored[rows[0].id].status,
        stored[rows[0].id].attempts,
        stored[rows[0].id].platform_message_id,
    ) == (
        "sent",
        1,
        "p-1",
    )
    assert (stored[rows[1].id].status, stored[rows[1].id].attempts, stored[rows[1].id].last_error) == (
        "sent",
        2,
        None,
    )
    assert stored[rows[0].id].sent_at is not None
    assert stored[rows[2].id].status == "pending"  # untouched


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    """SQLite's pool skips the rollback after a commit, but never leaves a transaction open."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/reset.db")
    await database.migrate()
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute("BEGIN")
        await driver.execute(
            "INSERT INTO customers (channel, external_id, blocked, profile, created_at) "
            "VALUES ('test', 'ghost', 0, '{}', '2026-01-01')"
        )
        assert driver.in_transaction  # SQLAlchemy does not know about this transaction
    async with database.session() as session:  # the same pooled connection, rolled back and unlocked
        session.add(Customer(channel="test", external_id="real", profile={}))
    async with database.session() as session:
        ids = (await session.execute(select(Customer.external_id))).scalars().all()
    assert ids == ["real"]
    await database.close()


async def test_customer_and_conversation_in_one_lookup(database: Database) -> None:
    async with database.session() as session:
        repo = ConversationRepository(session)
        customer, first = await repo.customer_and_conversation(incoming("hi", customer="anna"))
        assert first.state == State.BOT and first.customer_id == customer.id
        customer.blocked = True
    async with database.session() as session:
        repo = ConversationRepository(session)
        message = incoming("again", customer="anna", display_name="Anna K.")
        customer, again = await repo.customer_and_conversation(message)
        assert again.id == first.id and not customer.blocked and customer.display_name == "Anna K."
        await repo.transition(again, State.WAITING, "bot", "human_request")
        await repo.transition(again, State.RESOLVED, "agent:1", "done")
    async with database.session() as session:
        repo = ConversationRepository(session)
        moved = replace(incoming("new", customer="anna"), chat_id="other-chat")
        customer, new = await repo.customer_and_conversation(moved)
        assert new.id != first.id and new.state == State.BOT and new.chat_id == "other-chat"
        moved_back = replace(incoming("x", customer="anna"), chat_id="anna")
        customer, same = await repo.customer_and_conversation(moved_back)
        assert same.id == new.id and same.chat_id == "anna"


async def test_sqlite_statements_take_one_thread_hand_off_each(tmp_path: Path, monkeypatch: Any) -> None:
    """bot/storage/sqlite_driver.py: rows, row counts and errors as sqlite3 gives them, one hand-off each."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/hops.db")
    await database.migrate()
    hand_offs: list[str] = []
    execute = OneHopConnection._execute

    async def counted(self: OneHopConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        hand_offs.append(getattr(fn, "__name__", "?"))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneHopConnection, "_execute", counted)
    statements: list[str] = []
    event.listen(database.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    async with database.session() as session:
        session.add_all([Customer(channel="t", external_id=f"c{i}", profile={}) for i in range(3)])
        await session.flush()
        found = (await session.execute(select(Customer.external_id).order_by(Customer.id))).scalars().all()
        changed = await session.execute(
            update(Customer).where(Customer.external_id != "c0").values(blocked=True)
        )
    assert found == ["c0", "c1", "c2"]
    assert cast(CursorResult[Any], changed).rowcount == 2
    assert hand_offs == ["_run"] * len(statements) + ["commit"]  # aiosqlite's own cursors took 3-4 each
    with pytest.raises(IntegrityError):  # sqlite3's error, raised through SQLAlchemy as before
        async with database.session() as session:
            session.add(Customer(channel="t", external_id="c1", profile={}))
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, OneHopConnection)
    await database.close()


async def test_sqlite_streamed_results_still_work(tmp_path: Path) -> None:
    """Server-side (streamed) results read the rows the one-hop cursor already fetched."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/stream.db")
    await database.migrate()
    async with database.session() as session:
        session.add_all([Customer(channel="t", external_id=f"c{i}", profile={}) for i in range(5)])
    async with database.session() as session:
        result = await session.stream_scalars(select(Customer.external_id).order_by(Customer.id))
        assert [value async for value in result] == [f"c{i}" for i in range(5)]
    await database.close()
