"""Agent accounts as admins keep them: created, changed or deactivated, each change audited.

A new password or a deactivation ends the agent's log-in sessions (and their open event streams); a
deactivated agent goes offline, so the conversations they held go back to the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.handoff.agents import (
    AgentRepository,
    actor,
    check_capacity,
    check_role,
    hash_password,
    parse_languages,
)
from bot.handoff.assignment import audit
from bot.handoff.desk import Desk
from bot.handoff.moves import Moves, NotFound
from bot.storage.database import Database
from bot.storage.models import Agent


@dataclass(frozen=True)
class AgentChanges:
    """What an admin changes about an agent; None leaves a field as it is."""

    name: str | None = None
    role: str | None = None
    languages: list[str] | None = None
    capacity: int | None = None
    active: bool | None = None
    password: str | None = None
    status: str | None = None
    telegram_user_id: int | None = None  # 0: unlink their Telegram account


async def create_agent(
    database: Database,
    login: str,
    password: str,
    name: str | None,
    role: str,
    languages: list[str],
    capacity: int,
    by: Agent,
    telegram_user_id: int | None = None,
) -> Agent:
    """Create an agent (offline); `AgentError` says what was wrong, `DuplicateAgent` if the login is taken."""
    async with database.session() as session:
        agent = await AgentRepository(session).create(
            login, password, name, role, languages, capacity, telegram_user_id
        )
        audit(session, None, "agent_created", actor(by), agent.id, login=agent.login, role=agent.role)
    return agent


async def change_agent(desk: Desk, moves: Moves, login: str, changes: AgentChanges, by: Agent) -> Agent:
    """Apply `changes` to the agent with this login; return the agent as it now is."""
    async with desk.transaction() as session:
        repo = AgentRepository(session)
        agent = await repo.by_login(login, lock=True)
        if agent is None:
            raise NotFound(f"no agent with login {login!r}")
        changed: dict[str, Any] = {}
        if changes.name is not None:
            agent.name = changed["name"] = changes.name.strip() or agent.login
        if changes.role is not None:
            agent.role = changed["role"] = check_role(changes.role)
        if changes.languages is not None:
            agent.languages = changed["languages"] = parse_languages(changes.languages)
        if changes.capacity is not None:
            agent.capacity = changed["capacity"] = check_capacity(changes.capacity)
        if changes.telegram_user_id is not None:
            linked = changes.telegram_user_id or None
            agent.telegram_user_id = changed["telegram_user_id"] = await repo.check_telegram_user(
                linked, agent.id
            )
        if changes.password is not None:
            agent.password_hash = await asyncio.to_thread(hash_password, changes.password)
            changed["password"] = "changed"
            await repo.revoke_all(agent)
        if changes.active is not None:
            agent.active = changed["active"] = changes.active
            if not changes.active:
                await repo.revoke_all(agent)
        audit(session, None, "agent_updated", actor(by), agent.id, **changed)
        agent_id = agent.id
    deactivated = changes.active is False
    # deactivated, or now a content editor: offline, their conversations back to the queue
    status = "offline" if deactivated or changes.role == "editor" else changes.status
    if status is not None:
        await moves.set_status(agent_id, status, actor(by))
    if deactivated or changes.password is not None:
        desk.notifier.notify()  # the agent's sessions ended: so do their open event streams
    async with desk.database.session() as session:
        fresh = await AgentRepository(session).get(agent_id)
    assert fresh is not None
    return fresh


async def load_of(database: Database, agent: Agent) -> int:
    """How many conversations the agent holds now."""
    async with database.session() as session:
        return (await AgentRepository(session).loads([agent.id])).get(agent.id, 0)


async def roster(database: Database, online_only: bool = False) -> Sequence[tuple[Agent, int]]:
    """Every agent (or the active, online ones) by login, with the conversations each holds now."""
    async with database.session() as session:
        repo = AgentRepository(session)
        agents = list(await repo.all())
        if online_only:
            agents = [agent for agent in agents if agent.active and agent.status == "online"]
            loads = await repo.loads([agent.id for agent in agents])
        else:
            loads = await repo.loads()
    return [(agent, loads.get(agent.id, 0)) for agent in agents]
