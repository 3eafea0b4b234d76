"""Fair assignment, priorities, timeouts, business hours and honest waits, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.app import SupportBot
from bot.handoff.hours import BusinessHours
from bot.states import State
from bot.storage.models import Agent, Assignment, Conversation, Event, utcnow
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import desk_of, make_agent


async def hand_off(
    bot: SupportBot, customer: str, text: str = "I want to talk to a human", **kwargs: Any
) -> int:
    result = await bot.receive(incoming(text, customer=customer, **kwargs))
    assert result.state in (State.WAITING, State.WITH_AGENT), result
    await desk_of(bot).drain()
    assert result.conversation_id is not None
    return result.conversation_id


async def holder(bot: SupportBot, conversation_id: int) -> str | None:
    async with bot.database.session() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        if conversation.assigned_agent_id is None:
            return None
        agent = await session.get(Agent, conversation.assigned_agent_id)
        assert agent is not None
        return agent.login


async def set_online(bot: SupportBot, *logins: str) -> None:
    async with bot.database.session() as session:
        for login in logins:
            agent = (await session.execute(select(Agent).where(Agent.login == login))).scalar_one()
            agent.status = "online"


async def test_most_free_capacity_wins_then_who_waited_longest(bot: SupportBot) -> None:
    await make_agent(bot.database, "big", capacity=3, status="online")
    await make_agent(bot.database, "small", capacity=1, status="online")
    first = await hand_off(bot, "a")
    assert await holder(bot, first) == "big"  # 3 free beats 1 free
    second = await hand_off(bot, "b")
    # big has 2 free, small 1: big again; then 1 and 1: small waited longer since its last assignment
    assert await holder(bot, second) == "big"
    third = await hand_off(bot, "c")
    assert await holder(bot, third) == "small"
    fourth = await hand_off(bot, "d")
    assert await holder(bot, fourth) == "big"
    fifth = await hand_off(bot, "e")  # everyone is full: it waits
    assert await holder(bot, fifth) is None


async def test_language_and_previous_agent_are_preferred(bot: SupportBot) -> None:
    desk = desk_of(bot)
    await make_agent(bot.database, "olga", capacity=1, languages=["ru", "uk"], status="online")
    await make_agent(bot.database, "mark", capacity=3, languages=["en", "pl"], status="online")
    russian = await hand_off(bot, "ru-customer", "Позовите оператора, пожалуйста")
    assert await holder(bot, russian) == "olga"  # speaks Russian, despite mark's larger free capacity
    english = await hand_off(bot, "en-customer")
    assert await holder(bot, english) == "mark"

    # the English customer comes back later: mark served them before, so mark gets them again,
    # even though a fresh agent with more free capacity is online
    olga_id = (await _agent(bot, "olga")).id
    mark_id = (await _agent(bot, "mark")).id
    await desk.moves.resolve(english, mark_id, "done")
    await desk.moves.resolve(russian, olga_id, "done")
    await make_agent(bot.database, "zoe", capacity=5, languages=["en"], status="online")
    again = await hand_off(bot, "en-customer", "operator please")
    assert await holder(bot, again) == "mark"


async def _agent(bot: SupportBot, login: str) -> Agent:
    async with bot.database.session() as session:
        return (await session.execute(select(Agent).where(Agent.login == login))).scalar_one()


async def test_priority_bumps_and_queue_positions(bot: SupportBot, channel: RecordingChannel) -> None:
    plain = await hand_off(bot, "plain")
    upset = await hand_off(bot, "upset", "this is terrible service, worst shop ever")
    async with bot.database.session() as session:
        rows = {c.id: c for c in (await session.execute(select(Conversation))).scalars()}
    assert rows[upset].priority == bot.settings.handoff.priority["complaint"] > rows[plain].priority == 0
    # the complaint was queued later but is served first
    await make_agent(bot.database, "solo", capacity=1)
    solo = await _agent(bot, "solo")
    change = await desk_of(bot).moves.set_status(solo.id, "online", "agent:solo")
    assert [a.conversation_id for a in change.assigned] == [upset]
    summary = await desk_of(bot).queue_summary()
    assert summary["waiting"] == 1 and summary["free_slots"] == 0


async def test_offline_agent_returns_conversations_to_the_queue_in_their_place(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    desk = desk_of(bot)
    await make_agent(bot.database, "ivan", capacity=2, status="online")
    first = await hand_off(bot, "first")
    second = await hand_off(bot, "second")
    assert await holder(bot, first) == await holder(bot, second) == "ivan"
    third = await hand_off(bot, "third")  # waits: ivan is full
    ivan = await _agent(bot, "ivan")
    change = await desk.moves.set_status(ivan.id, "offline", "agent:ivan")
    assert sorted(change.requeued) == [first, second]
    async with bot.database.session() as session:
        waiting = (
            (
                await session.execute(
                    select(Conversation.id)
                    .where(Conversation.state == State.WAITING)
                    .order_by(Conversation.waiting_since, Conversation.id)
                )
            )
            .scalars()
            .all()
        )
        assignments = (await session.execute(select(Assignment).order_by(Assignment.id))).scalars().all()
    assert list(waiting) == [first, second, third]  # they keep the place they first had
    assert [(a.conversation_id, a.end_reason) for a in assignments] == [
        (first, "agent_offline"),
        (second, "agent_offline"),
    ]
    await desk.drain()
    assert any("another colleague" in reply.text and "number 1" in reply.text for _, reply in channel.sent)


async def test_reply_timeout_requeues_and_sets_the_agent_away(bot: SupportBot) -> None:
    desk = desk_of(bot)
    await make_agent(bot.database, "sleepy", capacity=3, status="online")
    conversation_id = await hand_off(bot, "patient")
    assert await holder(bot, conversation_id) == "sleepy"
    timeout = bot.settings.handoff.agent_reply_timeout
    assert await desk.timers.expire_reply_timeouts(utcnow() + timedelta(seconds=timeout - 5)) == []
    await make_agent(bot.database, "awake", capacity=1, status="online")
    returned = await desk.timers.expire_reply_timeouts(utcnow() + timedelta(seconds=timeout + 1))
    assert returned == [conversation_id]
    sleepy = await _agent(bot, "sleepy")
    assert sleepy.status == "away"
    await desk.assign()
    assert await holder(bot, conversation_id) == "awake"
    # an answered assignment never times out
    awake = await _agent(bot, "awake")
    await desk.moves.reply(conversation_id, awake.id, "Hello, how can I help?")
    assert await desk.timers.expire_reply_timeouts(utcnow() + timedelta(seconds=10 * timeout)) == []
    async with bot.database.session() as session:
        reasons = [
            (e.kind, e.data.get("reason"))
            for e in (await session.execute(select(Event).where(Event.kind == "returned_to_queue"))).scalars()
        ]
    assert reasons == [("returned_to_queue", "agent_reply_timeout")]


async def test_sla_breach_is_flagged_once(bot: SupportBot) -> None:
    desk = desk_of(bot)
    conversation_id = await hand_off(bot, "slow-day")
    sla = bot.settings.handoff.sla_first_response
    assert await desk.timers.flag_sla(utcnow() + timedelta(seconds=sla - 5)) == []
    assert await desk.timers.flag_sla(utcnow() + timedelta(seconds=sla + 1)) == [conversation_id]
    assert await desk.timers.flag_sla(utcnow() + timedelta(seconds=sla + 60)) == []
    async with bot.database.session() as session:
        events = (await session.execute(select(Event).where(Event.kind == "sla_breached"))).scalars().all()
    assert [e.conversation_id for e in events] == [conversation_id]


async def test_outside_business_hours_the_customer_hears_when_agents_are_back(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    desk = desk_of(bot)
    desk.hours = BusinessHours.from_settings(
        {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")}, "Europe/Warsaw"
    )
    monday_evening = datetime(2026, 11, 30, 19, 30, tzinfo=UTC)  # 20:30 in Warsaw
    desk.clock = lambda: monday_evening
    result = await bot.receive(incoming("I want to talk to a human", customer="night-owl"))
    await desk.drain()
    text = result.replies[0][1].text
    assert "number 1 in the queue" in text
    assert "we are back on Tuesday at 09:00 (Europe/Warsaw)" in text
    assert result.state == State.WAITING  # kept in the queue
    # still closed: nothing more is said
    assert await desk.timers.update_waiting(monday_evening + timedelta(hours=2)) == []
    tuesday_morning = datetime(2026, 12, 1, 8, 5, tzinfo=UTC)  # 09:05 in Warsaw
    assert await desk.timers.update_waiting(tuesday_morning) == [result.conversation_id]
    await desk.drain()
    assert "Our team is back. You are number 1 in the queue." in channel.sent[-1][1].text
    assert await desk.timers.update_waiting(tuesday_morning + timedelta(minutes=1)) == []  # told once


async def test_estimate_comes_from_real_handling_times_and_growth_is_announced(
    bot: SupportBot, channel: RecordingChannel
) -> None:
    desk = desk_of(bot)
    # history: two conversations that took 10 and 14 minutes to handle (median 12 min)
    await make_agent(bot.database, "hist", capacity=2, status="online")
    hist = await _agent(bot, "hist")
    done = [await hand_off(bot, f"old-{i}") for i in range(2)]
    async with bot.database.session() as session:
        for conversation_id, minutes in zip(done, (10, 14), strict=True):
            row = (
                await session.execute(select(Assignment).where(Assignment.conversation_id == conversation_id))
            ).scalar_one()
            row.assigned_at = utcnow() - timedelta(minutes=minutes)
    for conversation_id in done:
        await desk.moves.resolve(conversation_id, hist.id, "done")
    # three agents online, each busy with one conversation
    await desk.moves.set_status(hist.id, "offline", "test")
    for login in ("a1", "a2", "a3"):
        await make_agent(bot.database, login, capacity=1, status="online")
        await hand_off(bot, f"busy-{login}")
    now = utcnow()
    desk.clock = lambda: now
    result = await bot.receive(incoming("I want to talk to a human", customer="waiting-one"))
    await desk.drain()
    # position 1, capacity 3, median handling 12 min: 12 / 3 = 4 min
    assert "Estimated wait: about 4 min." in result.replies[0][1].text
    # two agents step away: the same place now takes 12 minutes; the customer hears about it (once)
    for login in ("a1", "a2"):
        await desk.moves.set_status((await _agent(bot, login)).id, "away", "test")
    assert (
        await desk.timers.update_waiting(now + timedelta(seconds=30)) == []
    )  # too soon after the last estimate
    later = now + timedelta(seconds=bot.settings.handoff.estimate_update_interval + 1)
    assert await desk.timers.update_waiting(later) == [result.conversation_id]
    await desk.drain()
    assert (
        "Sorry for the wait. You are number 1 in the queue; about 12 min to go." in channel.sent[-1][1].text
    )
    assert await desk.timers.update_waiting(later + timedelta(hours=1)) == []  # no growth since: nothing new


async def test_a_slot_freed_during_a_worker_round_is_given_at_the_moment_it_was_free(bot: SupportBot) -> None:
    """The worker's round starts at T; a conversation resolved at T+5 s (another process, meanwhile) frees a
    slot the round then fills: the new assignment starts after the old one ended, never before (it used
    to carry the round's start, so an agent's history showed more conversations at once than capacity)."""
    desk = desk_of(bot)
    start = utcnow()
    clock = [start]
    desk.clock = lambda: clock[0]
    agent = await make_agent(bot.database, "solo", capacity=1, status="online")
    first = await hand_off(bot, "first")
    second = await hand_off(bot, "second")
    assert (await holder(bot, first), await holder(bot, second)) == ("solo", None)
    flag_sla = desk.timers.flag_sla

    async def resolved_meanwhile(now: datetime) -> None:
        await flag_sla(now)
        clock[0] = start + timedelta(seconds=5)
        await desk.moves.resolve(first, agent.id, "done")
        clock[0] = start + timedelta(seconds=6)

    desk.timers.flag_sla = resolved_meanwhile  # type: ignore[method-assign]
    await desk.timers.tick()
    assert await holder(bot, second) == "solo"
    async with bot.database.session() as session:
        ended, started = (
            await session.execute(select(Assignment.ended_at, Assignment.assigned_at).order_by(Assignment.id))
        ).all()
    assert ended.ended_at is not None and started.assigned_at >= ended.ended_at, (ended, started)
