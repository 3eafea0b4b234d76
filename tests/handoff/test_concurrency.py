"""Several assigners at once (as several `supportbot run` processes would): never a double assignment,
never an agent over capacity, and everyone is served as capacity frees up.

Each assigner has its own Database (its own connection pool), like a separate process. PostgreSQL is the
acceptance case (SELECT ... FOR UPDATE SKIP LOCKED); SQLite runs a smaller version (serialized writes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.app import SupportBot
from bot.config import Settings
from bot.handoff.agents import as_utc
from bot.handoff.live import LiveHandoff
from bot.nlu.encoders import E5Encoder
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Agent, Assignment, Conversation, Event
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import desk_of, make_agent
from tests.support.services import POSTGRES_URL, postgres_schema

CASES = {
    # backend: (handoffs, agents, capacity, assigners)
    "postgres": (200, 6, 3, 4),
    "sqlite": (40, 3, 2, 4),
}


@pytest.fixture(params=list(CASES))
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Callable[[], Database]]]:
    """A factory of Database handles on one fresh database, each with its own connection pool."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
        yield "sqlite", lambda: Database(url)
        return
    schema, drop = await postgres_schema()
    yield (
        "postgres",
        lambda: Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}}),
    )
    await drop()


async def test_concurrent_assigners_never_double_assign_or_overfill(
    databases: tuple[str, Callable[[], Database]],
    make_settings: Callable[..., Settings],
    encoder: E5Encoder,
    channel: RecordingChannel,
) -> None:
    backend, connect = databases
    handoffs, agent_count, capacity, assigner_count = CASES[backend]
    settings = make_settings()
    main = connect()
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=main)
    await bot.start(progress=False)
    handles: list[Database] = []
    try:
        for number in range(agent_count):
            await make_agent(main, f"agent{number}", capacity=capacity, status="offline")

        # the handoffs, through the engine, many at once
        gate = asyncio.Semaphore(16)

        async def hand_off(number: int) -> int:
            async with gate:
                result = await bot.receive(incoming("I want to talk to a human", customer=f"cust-{number}"))
            assert result.state == State.WAITING and result.conversation_id is not None
            return result.conversation_id

        conversation_ids = await asyncio.gather(*(hand_off(n) for n in range(handoffs)))
        assert len(set(conversation_ids)) == handoffs
        await desk_of(bot).drain()

        # all agents come online at once (directly, so only the workers below assign)
        async with main.session() as session:
            await session.execute(update(Agent).values(status="online"))

        finished = asyncio.Event()
        assigned_by: Counter[int] = Counter()
        worst_load = 0

        async def assigner(number: int) -> None:
            database = connect()
            handles.append(database)
            desk = LiveHandoff(settings, database)
            while not finished.is_set():
                done = await desk.assign()
                assigned_by[number] += len(done)
                await asyncio.sleep(0)

        async def resolver() -> None:
            database = connect()
            handles.append(database)
            desk = LiveHandoff(settings, database)
            rng = random.Random(6)
            resolved = 0
            while resolved < handoffs:
                async with database.session() as session:
                    held = (
                        await session.execute(
                            select(Conversation.id, Conversation.assigned_agent_id).where(
                                Conversation.state == State.WITH_AGENT
                            )
                        )
                    ).all()
                for conversation_id, agent_id in rng.sample(held, k=min(len(held), 3)):
                    await desk.moves.resolve(conversation_id, agent_id, "done")
                    resolved += 1
                await asyncio.sleep(0.005)
            finished.set()

        async def monitor() -> None:
            nonlocal worst_load
            database = connect()
            handles.append(database)
            while not finished.is_set():
                async with database.session() as session:
                    loads = (
                        await session.execute(
                            select(func.count())
                            .select_from(Assignment)
                            .where(Assignment.ended_at.is_(None))
                            .group_by(Assignment.agent_id)
                        )
                    ).scalars()
                    worst_load = max([worst_load, *loads])
                await asyncio.sleep(0.005)

        started = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(assigner(n) for n in range(assigner_count)), resolver(), monitor()), timeout=180
        )
        elapsed = time.monotonic() - started

        async with main.session() as session:
            assignments = (await session.execute(select(Assignment))).scalars().all()
            states = Counter((await session.execute(select(Conversation.state))).scalars())
            assigned_events = (
                (await session.execute(select(Event.conversation_id).where(Event.kind == "assigned")))
                .scalars()
                .all()
            )

        # no conversation assigned twice; everyone assigned, served and resolved
        per_conversation = Counter(a.conversation_id for a in assignments)
        assert set(per_conversation) == set(conversation_ids)
        assert max(per_conversation.values()) == 1
        assert sorted(assigned_events) == sorted(conversation_ids)
        assert states == {State.RESOLVED: handoffs}
        assert sum(assigned_by.values()) == handoffs

        # no agent ever over capacity: sampled live, and replayed from the assignment intervals
        assert 0 < worst_load <= capacity
        by_agent: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for a in assignments:
            assert a.ended_at is not None and a.end_reason == "resolved"
            by_agent[a.agent_id].append((as_utc(a.assigned_at).timestamp(), +1))
            by_agent[a.agent_id].append((as_utc(a.ended_at).timestamp(), -1))
        for moments in by_agent.values():
            load = peak = 0
            for _, step in sorted(moments):  # at equal times an end (-1) sorts before a start
                load += step
                peak = max(peak, load)
            assert peak <= capacity
        assert len(by_agent) == agent_count  # everyone got work
        print(f"{backend}: {handoffs} handoffs served in {elapsed:.1f}s; per assigner {dict(assigned_by)}")
    finally:
        for handle in handles:
            await handle.close()
        await bot.close()
