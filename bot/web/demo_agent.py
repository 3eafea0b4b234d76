"""The demo agent `supportbot run` creates on the embedded defaults, and prints at every start.

On SQLite with no agents at all, agent "demo" (a supervisor) gets a random password, kept next to the
database so later starts can print it again; PostgreSQL never gets a demo agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.handoff.agents import AgentError, AgentRepository, verify_password
from bot.storage.database import Database

log = logging.getLogger(__name__)

DEMO_LOGIN = "demo"


@dataclass(frozen=True)
class DemoAgent:
    login: str
    password: str
    created: bool  # made just now (else: remembered from an earlier start)
    file: Path | None  # where the password is kept, next to the database


def sqlite_file(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if database_url.startswith(prefix):
            rest = database_url[len(prefix) :].split("?", 1)[0]
            return Path(rest) if rest and rest != ":memory:" else None
    return None


async def ensure_demo_agent(settings: Settings) -> DemoAgent | None:
    """On SQLite with no agents at all, create agent "demo" with a random password; else recall it.

    The password is kept (mode 0600) in `<database>.demo-agent.json` next to the database file, so each
    start can print it again while the demo agent still has it. PostgreSQL never gets a demo agent.
    """
    if not (settings.console.enabled and settings.console.demo_agent):
        return None
    db_file = sqlite_file(settings.database_url)
    if db_file is None:
        return None
    secret_file = db_file.with_name(f"{db_file.stem}.demo-agent.json")
    database = Database(settings.database_url)
    try:
        await database.migrate()
        async with database.session() as session:
            repo = AgentRepository(session)
            agents = await repo.all()
            if not agents:
                password = secrets.token_urlsafe(9)
                try:
                    await repo.create(DEMO_LOGIN, password, "Demo Agent", "supervisor", [], 5)
                except AgentError:  # another process made one meanwhile
                    return None
                stored: Path | None = secret_file
                try:
                    secret_file.write_text(json.dumps({"login": DEMO_LOGIN, "password": password}))
                    os.chmod(secret_file, 0o600)
                except OSError as exc:
                    log.warning("demo agent: could not keep the password in %s: %s", secret_file, exc)
                    stored = None
                return DemoAgent(DEMO_LOGIN, password, True, stored)
            demo = next((a for a in agents if a.login == DEMO_LOGIN and a.active), None)
            if demo is None or not secret_file.exists():
                return None
            try:
                password = str(json.loads(secret_file.read_text())["password"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
            if not await asyncio.to_thread(verify_password, demo.password_hash, password):
                return None  # the password was changed: it is not ours to print any more
            return DemoAgent(DEMO_LOGIN, password, False, secret_file)
    finally:
        await database.close()
