"""Replies stored and leased in the turn's transaction: sent exactly once, never lost (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.app import SupportBot
from bot.errors import SendError
from bot.handoff.agents import as_utc
from bot.messages import IncomingMessage
from bot.states import State
from bot.storage.models import Conversation, Message, utcnow
from tests.support.channel import RecordingChannel, incoming
from tests.support.model import hung_model

QUESTIONS = ["How can I pay for my order?", "Сколько идёт доставка?", "Jak długo trwa dostawa?"]


async def outbound(bot: SupportBot) -> list[Message]:
    async with bot.database.session() as session:
        rows = await session.execute(select(Message).where(Message.direction == "out").order_by(Message.id))
        return list(rows.scalars())


async def make_due(bot: SupportBot) -> None:
    """Let every pending reply's next attempt (or its lease) be due now."""
    async with bot.database.session() as session:
        await session.execute(
            update(Message)
            .where(Message.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_concurrent_turns_and_outbox_rounds_send_each_reply_once(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    """Turns send their own replies while the outbox's retry loop claims what is due, as in `run`."""
    turns_done = asyncio.Event()

    async def outbox_loop() -> None:
        while not turns_done.is_set():
            await bot.outbox.deliver()
            await asyncio.sleep(0)

    async def customer(number: int) -> None:
        for turn, text in enumerate(QUESTIONS):
            await bot.receive(incoming(text, customer=f"c{number}", msg_id=f"{number}-{turn}"))

    loop_task = asyncio.create_task(outbox_loop())
    await asyncio.gather(*(customer(n) for n in range(8)))
    turns_done.set()
    await loop_task
    await bot.outbox.deliver()
    rows = await outbound(bot)
    sent = Counter(target.message_id for target, _ in channel.sent)
    assert len(rows) == 8 * len(QUESTIONS)
    assert sent == Counter({row.id: 1 for row in rows})
    assert {(row.status, row.attempts) for row in rows} == {("sent", 1)}
    assert all(row.platform_message_id for row in rows)


async def test_failed_sends_are_retried_until_sent_and_never_sent_twice(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    channel.fail_next += [SendError("HTTP 429", retry_after=30), SendError("timeout"), SendError("HTTP 502")]
    results = await asyncio.gather(
        *(bot.receive(incoming(text, customer=f"c{i}")) for i, text in enumerate(QUESTIONS))
    )
    assert all(result.replies for result in results)
    rows = await outbound(bot)
    assert sorted((row.status, row.attempts) for row in rows) == [("pending", 1)] * 3
    assert channel.sent == [] and all(row.last_error for row in rows)
    assert await bot.outbox.deliver() == 0  # not due yet: backing off
    await make_due(bot)
    sent = await asyncio.gather(bot.outbox.deliver(), bot.outbox.deliver(), bot.outbox.deliver())
    assert sum(sent) == 3
    assert Counter(target.message_id for target, _ in channel.sent) == Counter({row.id: 1 for row in rows})
    assert {(row.status, row.attempts) for row in await outbound(bot)} == {("sent", 2)}


async def test_a_reply_leased_by_a_turn_waits_for_its_lease_then_is_sent(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    """The turn commits its reply leased to this process; should the process die before sending it,
    the outbox sends it when the lease ends, and not before."""
    result = await bot.engine.handle(incoming("How can I pay for my order?"))  # stored, not sent
    assert [claimed.message_id for claimed in result.claimed] == [row_id for row_id, _ in result.replies]
    [row] = await outbound(bot)
    assert row.status == "pending" and row.next_attempt_at is not None
    assert await bot.outbox.deliver() == 0 and channel.sent == []
    await make_due(bot)
    assert await bot.outbox.deliver() == 1
    assert [target.message_id for target, _ in channel.sent] == [row.id]
    assert await bot.outbox.deliver() == 0


async def test_replies_on_a_channel_this_process_does_not_serve_are_left_due(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    message = IncomingMessage(
        channel="elsewhere", chat_id="e1", customer_id="e1", text="How can I pay?", platform_message_id="1"
    )
    result = await bot.receive(message)
    assert result.replies and not result.claimed
    [row] = await outbound(bot)
    assert row.status == "pending" and row.next_attempt_at is not None
    assert as_utc(row.next_attempt_at) <= utcnow()  # due now, for the process that serves it
    assert channel.sent == []


async def test_the_message_is_stored_and_goes_to_a_person_when_the_model_fails(
    bot: SupportBot, channel: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent layer raising (fault injection: a crash cannot be had on demand) loses nothing and leaves
    no one silent: the message is kept, the conversation queued for a person (reason bot_error), the
    customer told; a redelivery of the same message is a duplicate, not a second reply."""

    def broken(texts: object) -> object:
        raise RuntimeError("model crashed")

    monkeypatch.setattr(bot.matcher(), "understand_many", broken)
    result = await bot.receive(incoming("where is my order 12345, it was due on monday", msg_id="m-1"))
    assert result.decision is not None
    assert (result.decision.kind, result.decision.reason) == ("handoff", "bot_error")
    async with bot.database.session() as session:
        rows = list((await session.execute(select(Message).order_by(Message.id))).scalars())
        state = (await session.execute(select(Conversation.state))).scalar_one()
    assert (rows[0].direction, rows[0].text) == ("in", "where is my order 12345, it was due on monday")
    assert rows[0].decision and rows[0].decision["reason"] == "bot_error"
    assert state == State.WAITING
    assert len(channel.sent) == 1 and rows[1].status == "sent"  # told that a person will answer
    monkeypatch.undo()
    assert (
        await bot.receive(incoming("where is my order 12345, it was due on monday", msg_id="m-1"))
    ).duplicate
    assert len(channel.sent) == 1


async def test_a_message_the_model_has_no_decision_on_in_time_goes_to_a_person(
    bot: SupportBot, channel: RecordingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung model (fault injection: a call that blocks until released) leaves no one silent: after
    policy.understanding_timeout_seconds the message is kept and queued for a person (reason bot_timeout),
    the customer told; the model's late decision sends nothing, and the next customer is answered as usual."""
    with hung_model(bot, monkeypatch, deadline=0.5):
        result = await bot.receive(incoming("where is my order 12345, it was due on monday", customer="c1"))
    assert result.decision is not None
    assert (result.decision.kind, result.decision.reason) == ("handoff", "bot_timeout")
    async with bot.database.session() as session:
        rows = list((await session.execute(select(Message).order_by(Message.id))).scalars())
        state = (await session.execute(select(Conversation.state))).scalar_one()
    assert (rows[0].direction, rows[0].text) == ("in", "where is my order 12345, it was due on monday")
    assert rows[0].decision and rows[0].decision["reason"] == "bot_timeout"
    assert state == State.WAITING
    assert len(channel.sent) == 1  # told that a person will answer
    answered = await bot.receive(incoming("How can I pay for my order?", customer="c2"))
    assert answered.decision is not None and answered.decision.kind == "answer"
    assert [target.chat_id for target, _ in channel.sent] == ["c1", "c2"]
