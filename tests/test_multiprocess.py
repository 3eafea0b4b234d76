"""Two real `supportbot run` processes on one PostgreSQL database and one Redis, one of them killed mid-way.

Both start at once on an empty database (they migrate it together). Web chat visitors talk to both; agents
log in on both and work the queue through the API; the live events of one process reach an agent whose
stream is open on the other. Midway process A is killed with SIGKILL and started again; clients whose
request failed send it again, with the same `client_message_id`, to whichever process answers (as a load
balancer would). At the end: every question was stored once and answered once, every handoff was served by
exactly one agent once, and no agent ever held more conversations than their capacity.
"""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.states import State
from bot.storage.database import Database
from bot.storage.models import Assignment, Conversation, Customer, Message
from tests.support.cli import SUPPORTBOT
from tests.support.handoff import PASSWORD, EventStream, make_agent, wait_for
from tests.support.paths import REPO
from tests.support.server import free_port
from tests.support.services import POSTGRES_URL, REDIS_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

VISITORS = 12  # half on each process; every other one asks for a person
LATE_VISITORS = 4  # after the restart
QUESTIONS = 1  # FAQ questions per visitor before that
AGENTS, CAPACITY = 4, 1  # two log in on each process; fewer places than handoffs
HUMAN = "I want to talk to a human"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (what a first deployment starts on); its SQLAlchemy URL."""
    name = f"mp_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(admin)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


class Service:
    """One `supportbot run` process on a fixed port; `kill` is SIGKILL, `start` starts it again."""

    def __init__(self, name: str, config: Path, folder: Path) -> None:
        self.name = name
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [SUPPORTBOT, "--config", str(self.config), "run", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def healthy(self, within: float = 180.0) -> None:
        async def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            with suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.url}/healthz")).status_code == 200
            return False

        await wait_for(answers, within, f"{self.name} to answer /healthz")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class Run:
    """What the clients saw, and the processes they can reach (home first, then the other)."""

    services: list[Service]
    sent: dict[str, str] = field(default_factory=dict)  # client_message_id -> visitor id
    handoffs: set[str] = field(default_factory=set)  # visitors who asked for a person
    retries: int = 0
    posted: int = 0

    async def request(self, home: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send until some process answers with less than 500; fail over to the other process."""
        attempt = 0
        while True:
            service = self.services[(home + attempt) % len(self.services)]
            try:
                async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                    response = await client.request(method, path, **kwargs)
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            attempt += 1
            self.retries += 1
            assert attempt < 400, f"{method} {path}: no process answered"
            await asyncio.sleep(0.1)


_STARTED = [0.0]


def _mark(what: str) -> None:
    """With SUPPORTBOT_TEST_VERBOSE, print how long each phase took (the test's time budget is tight)."""
    if os.environ.get("SUPPORTBOT_TEST_VERBOSE"):
        now = time.monotonic()
        print(f"{what}: {now - (_STARTED[0] or now):.1f} s")
        _STARTED[0] = now


def faq_questions() -> list[str]:
    with (REPO / "eval" / "heldout_test.csv").open(encoding="utf-8", newline="") as file:
        return [row["text"] for row in csv.DictReader(file) if row["intent"] != "oos"]


async def visitor(run: Run, number: int, questions: list[str]) -> None:
    home = number % 2
    visitor_id = f"mp-visitor-{number:03d}-{uuid.uuid4().hex[:12]}"
    headers = {"X-Visitor-Id": visitor_id}
    texts = [questions[(number * QUESTIONS + n) % len(questions)] for n in range(QUESTIONS)]
    if number % 2 == 0:
        texts.append(HUMAN)
        run.handoffs.add(visitor_id)
    for n, text in enumerate(texts):
        client_message_id = f"v{number}-m{n}"
        run.sent[client_message_id] = visitor_id
        body = {"text": text, "client_message_id": client_message_id}
        response = await run.request(home, "POST", "/api/v1/webchat/messages", json=body, headers=headers)
        assert response.status_code == 200, response.text
        run.posted += 1


async def agent(run: Run, home: int, login: str, finished: asyncio.Event) -> None:
    """Log in on the home process, go online, reply once to and resolve what is given (as the console)."""
    response = await run.request(
        home, "POST", "/api/v1/auth/login", json={"login": login, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    auth = {"Authorization": f"Bearer {response.json()['token']}"}
    response = await run.request(
        home, "PUT", "/api/v1/agents/me/status", json={"status": "online"}, headers=auth
    )
    assert response.status_code == 200, response.text
    while not finished.is_set():
        mine = await run.request(
            home, "GET", "/api/v1/conversations?mine=true&state=with_agent", headers=auth
        )
        assert mine.status_code == 200, mine.text
        for conversation in mine.json():
            path = f"/api/v1/conversations/{conversation['id']}"
            detail = await run.request(home, "GET", path, headers=auth)
            if detail.status_code != 200:
                continue
            # a reply whose answer was lost with a killed process is on screen: not written twice
            if not any(m["sender"] == "agent" for m in detail.json()["messages"]):
                reply = {"text": f"{login} here, looking into it."}
                await run.request(home, "POST", f"{path}/messages", json=reply, headers=auth)
            await run.request(home, "POST", f"{path}/resolve", json={"reason": "done"}, headers=auth)
        await asyncio.sleep(0.2)


async def worst_load(database: Database, finished: asyncio.Event) -> int:
    """The most conversations any agent held at once, sampled until `finished`."""
    worst = 0
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
            worst = max([worst, *loads])
        await asyncio.sleep(0.1)
    return worst


async def test_two_processes_one_killed_midway_answer_everything_once(
    tmp_path: Path, index_cache: Path
) -> None:
    async with fresh_database() as url:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"kb: {{path: '{REPO / 'kb'}'}}\n"
            f"intents: {{path: '{REPO / 'intents'}'}}\n"
            f"database: {{url: '{url}'}}\n"
            f"embedding: {{cache_dir: '{index_cache}'}}\n"
            "policy: {calibration_file: null}\n"
            f"redis: {{url: '{REDIS_URL}', key_prefix: 'mp-{uuid.uuid4().hex[:8]}:'}}\n"
            "channels: {webchat: {rate_limit_per_minute: 600, new_visitors_per_address_per_hour: 0}}\n"
            "console: {demo_agent: false}\n",
            encoding="utf-8",
        )
        services = [Service("A", config, tmp_path), Service("B", config, tmp_path)]
        _mark("start")
        database = Database(url)
        try:
            for service in services:  # together, on the empty database: they migrate it together
                service.start()
            await asyncio.gather(*(service.healthy() for service in services))
            _mark("both healthy")
            logins = [f"agent{n}" for n in range(AGENTS)]
            for login in logins:
                await make_agent(database, login, capacity=CAPACITY)
            await make_agent(database, "lead", role="supervisor", capacity=CAPACITY)
            await _serve_and_kill(Run(services), database, logins)
        finally:
            for service in services:
                service.stop()
            await database.close()


async def _serve_and_kill(run: Run, database: Database, logins: list[str]) -> None:
    a, b = run.services
    questions = faq_questions()
    finished = asyncio.Event()
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as client:
        login = await client.post("/api/v1/auth/login", json={"login": "lead", "password": PASSWORD})
        # the supervisor's live events, open on B, carry what happens on A
        async with EventStream(client, login.json()["token"]) as stream:
            monitor = asyncio.create_task(worst_load(database, finished))
            agents = [
                asyncio.create_task(agent(run, n % 2, login, finished)) for n, login in enumerate(logins)
            ]
            visitors = [asyncio.create_task(visitor(run, n, questions)) for n in range(VISITORS)]
            total = VISITORS * QUESTIONS + VISITORS // 2
            await wait_for(lambda: run.posted >= total // 3, 120, "a third of the messages")
            _mark("a third sent")
            a.kill()  # mid-way, with requests in flight on A
            killed_at = run.posted
            a.start()
            await a.healthy()
            _mark("A restarted")
            # later visitors, on both again: the restarted process serves as before
            late = range(VISITORS, VISITORS + LATE_VISITORS)
            visitors += [asyncio.create_task(visitor(run, n, questions)) for n in late]
            await asyncio.gather(*visitors)
            _mark("visitors done")
            await wait_for(lambda: _all_resolved(database, len(run.handoffs)), 120, "every handoff resolved")
            _mark("handoffs resolved")
            finished.set()
            worst = await monitor
            await asyncio.gather(*agents)
            queued = [event for event in stream.events if event["kind"] == "queued"]
    assert killed_at < total, "the kill came after the last message"
    assert worst <= CAPACITY, f"an agent held {worst} conversations (capacity {CAPACITY})"
    assert len(queued) >= len(run.handoffs) // 2, f"B's stream saw {len(queued)} handoffs: {stream.kinds()}"
    await _everything_once(database, run)


async def _all_resolved(database: Database, expected: int) -> bool:
    async with database.session() as session:
        resolved = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.state == State.RESOLVED, Conversation.handoff_at.is_not(None))
        )
    return resolved == expected


async def _everything_once(database: Database, run: Run) -> None:
    async with database.session() as session:
        inbound = (
            await session.execute(
                select(Message.platform_message_id, Message.conversation_id, Customer.external_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(Message.direction == "in")
            )
        ).all()
        replies = Counter(
            (
                await session.execute(
                    select(Message.conversation_id).where(Message.direction == "out", Message.sender == "bot")
                )
            ).scalars()
        )
        agent_messages = Counter(
            (
                await session.execute(select(Message.conversation_id).where(Message.sender == "agent"))
            ).scalars()
        )
        assignments = Counter((await session.execute(select(Assignment.conversation_id))).scalars())
        handed_off = set(
            (
                await session.execute(select(Conversation.id).where(Conversation.handoff_at.is_not(None)))
            ).scalars()
        )
    stored = Counter(row.platform_message_id for row in inbound)
    assert set(stored) == set(run.sent), "a message was lost, or one nobody sent was stored"
    assert all(count == 1 for count in stored.values()), [k for k, v in stored.items() if v > 1]
    assert all(run.sent[row.platform_message_id] == row.external_id for row in inbound)
    # one conversation per visitor; the bot answered each question once (plus one "you're in the queue")
    per_conversation = Counter(row.conversation_id for row in inbound)
    for conversation_id, questions in per_conversation.items():
        assert replies[conversation_id] == questions, (conversation_id, questions, replies[conversation_id])
    assert len(handed_off) == len(run.handoffs)
    for conversation_id in handed_off:
        assert assignments[conversation_id] == 1, (
            f"#{conversation_id} assigned {assignments[conversation_id]}x"
        )
        assert agent_messages[conversation_id] == 1, f"#{conversation_id}: {agent_messages[conversation_id]}"
    if os.environ.get("SUPPORTBOT_TEST_VERBOSE"):
        print(f"retries {run.retries}, messages {len(stored)}, handoffs {len(handed_off)}")
