"""Benchmark driver: N `supportbot run` processes on a fresh PostgreSQL database and Redis, loaded by Locust.

    .venv/bin/python loadtest/cluster.py --processes 2 --users 16 --duration 90 --think 0,0 --handoff-every 0
    .venv/bin/python loadtest/cluster.py --processes 2 --users 24 --duration 600 --max-visitors 1000 \\
        --messages 2 --handoff-every 2 --agents 5 --kill-after 300

It creates a database on the PostgreSQL server (`--postgres`, default the test server), starts the processes
on free ports with one config (the demo KB, Redis for rate limits), creates the agents, runs
loadtest/locustfile.py headless against all processes (each Locust user keeps to one and fails over to the
next, as behind a load balancer), optionally SIGKILLs the first process at `--kill-after` seconds and starts
it again, then reads the database: messages lost or stored twice, questions answered twice or not at all,
handoffs and who served them, and the most conversations any agent held at once. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.handoff.agents import AgentRepository  # noqa: E402
from bot.storage.database import Database  # noqa: E402
from bot.storage.models import Assignment, Conversation, Message  # noqa: E402

BIN = Path(sys.executable).parent
PASSWORD = "load-test-password"


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy and in all, so far (every core; Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                [str(BIN / "supportbot"), "--config", str(self.config), "run", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, within: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            assert self.popen is not None and self.popen.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.url} did not become healthy")

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()


async def create_database(admin: str) -> str:
    name = f"load_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return name


async def drop_database(admin: str, name: str) -> None:
    connection = await asyncpg.connect(admin)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def create_agents(url: str, count: int, capacity: int) -> list[str]:
    database = Database(url)
    logins = [f"load{n}" for n in range(count)]
    async with database.session() as session:
        for login in logins:
            await AgentRepository(session).create(login, PASSWORD, login.title(), "agent", [], capacity)
    await database.close()
    return logins


async def audit(url: str) -> dict[str, Any]:
    """What the database says: lost/duplicated messages, answers per question, handoffs, agents' loads."""
    database = Database(url)
    async with database.session() as session:
        messages = (
            await session.execute(
                select(
                    Message.id,
                    Message.conversation_id,
                    Message.direction,
                    Message.sender,
                    Message.decision,
                    Message.created_at,
                ).order_by(Message.id)
            )
        ).all()
        conversations = (
            await session.execute(select(Conversation.id, Conversation.state, Conversation.handoff_at))
        ).all()
        assignments = (
            await session.execute(
                select(
                    Assignment.conversation_id,
                    Assignment.agent_id,
                    Assignment.assigned_at,
                    Assignment.ended_at,
                )
            )
        ).all()
    await database.close()
    by_conversation: dict[int, list[Any]] = defaultdict(list)
    for row in messages:
        by_conversation[row.conversation_id].append(row)
    unanswered = answered_twice = questions = 0
    handoff_at = {c.id: c.handoff_at for c in conversations}
    for conversation_id, rows in by_conversation.items():
        handed_at = handoff_at.get(conversation_id)
        for index, row in enumerate(rows):
            if row.direction != "in" or row.decision is None:
                continue
            if handed_at is not None and row.created_at > handed_at:
                continue  # after the handoff the customer's messages are for people, not the bot
            questions += 1
            replies = 0
            for later in rows[index + 1 :]:
                if later.direction == "in":
                    break
                replies += later.sender == "bot"
            unanswered += replies == 0
            answered_twice += replies > 1
    handed = {c.id for c in conversations if c.handoff_at is not None}
    per_conversation = Counter(a.conversation_id for a in assignments)
    events = sorted(
        [(a.assigned_at, 1, a.agent_id) for a in assignments]
        + [(a.ended_at, -1, a.agent_id) for a in assignments if a.ended_at is not None],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    load: Counter[int] = Counter()
    worst = 0
    for _, step, agent in events:
        load[agent] += step
        worst = max(worst, load[agent])
    states = Counter(c.state for c in conversations)
    return {
        "conversations": len(conversations),
        "customer_messages": sum(1 for m in messages if m.direction == "in"),
        "bot_turns": questions,
        "bot_turns_unanswered": unanswered,
        "bot_turns_answered_twice": answered_twice,
        "handoffs": len(handed),
        "handoffs_by_assignments": dict(Counter(per_conversation[c] for c in handed)),
        "states": dict(states),
        "most_conversations_one_agent_held": worst,  # from the assignments' recorded start and end times
    }


def sample_loads(url: str, stop: threading.Event, worst: list[int]) -> None:
    """Sample the open assignments per agent every 0.2 s until `stop`; keep the highest in `worst[0]`."""

    async def sample() -> None:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        while not stop.is_set():
            rows = await connection.fetch(
                "SELECT count(*) AS held FROM assignments WHERE ended_at IS NULL GROUP BY agent_id"
            )
            worst[0] = max([worst[0], *(row["held"] for row in rows)])
            await asyncio.sleep(0.2)
        await connection.close()

    asyncio.run(sample())


def locust_stats(prefix: Path) -> dict[str, dict[str, Any]]:
    with prefix.with_name(prefix.name + "_stats.csv").open(encoding="utf-8") as file:
        return {
            row["Name"]: {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "per_s": round(float(row["Requests/s"]), 2),
                "p50_ms": row["50%"],
                "p99_ms": row["99%"],
            }
            for row in csv.DictReader(file)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--duration", type=int, default=90, help="seconds of load")
    parser.add_argument("--think", default="0,0", help="seconds between a visitor's messages: min,max")
    parser.add_argument("--messages", type=int, default=3, help="questions per visitor")
    parser.add_argument(
        "--handoff-every", type=int, default=0, help="every Nth visitor asks for a person (0: none)"
    )
    parser.add_argument("--agents", type=int, default=0)
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument(
        "--max-visitors", type=int, default=0, help="conversations to start in all (0: no limit)"
    )
    parser.add_argument(
        "--kill-after", type=float, default=0, help="SIGKILL the first process after this many s"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is in the output)")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for logs and Locust's CSV (default: temp)"
    )
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="supportbot-load-"))
    out.mkdir(parents=True, exist_ok=True)
    name = asyncio.run(create_database(args.postgres))
    url = make_url(args.postgres.replace("postgresql://", "postgresql+asyncpg://")).set(database=name)
    database_url = url.render_as_string(hide_password=False)
    config = out / "config.yaml"
    config.write_text(
        f"kb: {{path: '{ROOT / 'kb'}'}}\nintents: {{path: '{ROOT / 'intents'}'}}\n"
        f"database: {{url: '{database_url}'}}\n"
        f"embedding: {{cache_dir: '{ROOT / 'var' / 'index'}'}}\n"
        "policy: {calibration_file: null}\n"
        f"redis: {{url: '{args.redis}', key_prefix: '{name}:'}}\n"
        "channels: {webchat: {rate_limit_per_minute: 10000, new_visitors_per_address_per_hour: 0}}\n"
        "console: {demo_agent: false}\n",
        encoding="utf-8",
    )
    processes = [Process(config, out / f"process{n}.log") for n in range(args.processes)]
    summary: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "out": str(out)}
    try:
        for process in processes:
            process.start()
        summary["start_seconds"] = [round(p.wait_healthy(), 1) for p in processes]
        logins = asyncio.run(create_agents(database_url, args.agents, args.capacity)) if args.agents else []
        env = {
            **os.environ,
            "LOADTEST_HOSTS": ",".join(p.url for p in processes),
            "LOADTEST_AGENTS": ",".join(f"{login}:{PASSWORD}" for login in logins),
            "LOADTEST_THINK": args.think,
            "LOADTEST_MESSAGES": str(args.messages),
            "LOADTEST_HANDOFF_EVERY": str(args.handoff_every or 10**9),
            "LOADTEST_MAX_VISITORS": str(args.max_visitors),
        }
        prefix = out / "locust"
        command = [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "loadtest" / "locustfile.py"),
            "--headless",
            "--host",
            processes[0].url,
            "--users",
            str(args.users + len(logins)),
            "--spawn-rate",
            str(max(1, args.users // 2)),
            "--run-time",
            f"{args.duration}s",
            "--stop-timeout",
            "30",
            "--csv",
            str(prefix),
            "--only-summary",
            "WebchatVisitor",
            *(["AgentUser"] if logins else []),
        ]
        stop, worst = threading.Event(), [0]
        sampler = threading.Thread(target=sample_loads, args=(database_url, stop, worst), daemon=True)
        sampler.start()
        cpu_before = sum(cpu_seconds(p.popen.pid) for p in processes if p.popen)
        busy_before, all_before = machine_busy_seconds()
        with (out / "locust.log").open("wb") as log:
            locust = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            if args.kill_after:
                time.sleep(args.kill_after)
                processes[0].kill()
                killed = time.monotonic()
                processes[0].start()
                processes[0].wait_healthy()
                summary["restart_seconds"] = round(time.monotonic() - killed, 1)
            locust.wait()
        busy_after, all_after = machine_busy_seconds()
        stop.set()
        sampler.join()
        summary["most_conversations_one_agent_held_sampled"] = worst[0]
        if not args.kill_after:  # a killed process's CPU is gone with it
            cpu = sum(cpu_seconds(p.popen.pid) for p in processes if p.popen) - cpu_before
            summary["cpu_seconds_of_supportbot"] = round(cpu, 1)
        # how busy the machine was, all processes (ours, Locust's, everyone else's): 1.0 = every core busy
        summary["machine_busy_share"] = round((busy_after - busy_before) / (all_after - all_before), 3)
        summary["cores"] = os.cpu_count()
        summary["locust"] = locust_stats(prefix)
        time.sleep(3)  # the last replies and assignments of the processes settle
        summary["database"] = asyncio.run(audit(database_url))
        if "cpu_seconds_of_supportbot" in summary and summary["database"]["customer_messages"]:
            per = summary["cpu_seconds_of_supportbot"] * 1000 / summary["database"]["customer_messages"]
            summary["supportbot_cpu_ms_per_customer_message"] = round(per, 1)
    finally:
        for process in processes:
            process.stop()
        if args.keep:
            summary["database_url"] = database_url
        else:
            asyncio.run(drop_database(args.postgres, name))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
