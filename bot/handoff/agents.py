"""Agents: accounts with roles, languages and capacity; argon2 passwords; bearer tokens."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast, overload

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import SupportBotError
from bot.storage.models import Agent, AgentToken, Assignment, as_utc, utcnow

DESK_ROLES = ("agent", "supervisor", "admin")  # each sees what the one before sees, and more
ROLES = (*DESK_ROLES, "editor")  # an editor edits the content and never sees customers' conversations
ROLE_RANK = {role: rank for rank, role in enumerate(DESK_ROLES)}
CONTENT_ROLES = frozenset({"editor", "supervisor", "admin"})  # who may edit kb/ and intents/
STATUSES = ("online", "away", "offline")
MIN_PASSWORD = 8
MAX_CAPACITY = 50
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_hasher = PasswordHasher()
_dummy_hash: str | None = None


class AgentError(SupportBotError):
    """Invalid agent data (bad login, unknown role...); the message says what to fix."""


class DuplicateAgent(AgentError):
    """An agent with this login already exists."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"the password must be at least {MIN_PASSWORD} characters long")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash (unknown login) spend the same time and say no."""
    global _dummy_hash
    if password_hash is None:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_hex(16))
        password_hash = _dummy_hash
        password = password + "\x00never"
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def ticket_digest(ticket: str) -> str:
    return hashlib.sha256(b"event-ticket\x00" + ticket.encode("utf-8")).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AgentError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def has_role(agent: Agent, role: str) -> bool:
    """True when the agent's role is `role` or above (agent < supervisor < admin); for "editor", when
    they may edit content (editors, supervisors, admins). An editor has none of the desk's roles."""
    if role == "editor":
        return agent.role in CONTENT_ROLES
    return ROLE_RANK.get(agent.role, -1) >= ROLE_RANK[role]


def parse_languages(languages: str | Iterable[str] | None) -> list[str]:
    if languages is None:
        return []
    items = languages.split(",") if isinstance(languages, str) else list(languages)
    result: list[str] = []
    for item in items:
        code = item.strip().lower()
        if not code:
            continue
        if not _LANGUAGE.match(code):
            raise AgentError(f"language {item!r} is not a language code like en, ru or pt-br")
        if code not in result:
            result.append(code)
    return result


def check_capacity(capacity: int) -> int:
    if not 0 <= capacity <= MAX_CAPACITY:
        raise AgentError(f"capacity must be between 0 and {MAX_CAPACITY} conversations, not {capacity}")
    return capacity


def speaks(agent: Agent, language: str | None) -> bool:
    """An agent without listed languages is taken to speak any language."""
    if not agent.languages or not language:
        return True
    base = language.split("-")[0].lower()
    return any(code.split("-")[0] == base for code in agent.languages)


@dataclass
class AgentRepository:
    """Agents, their tokens and their current load."""

    session: AsyncSession

    async def create(
        self,
        login: str,
        password: str,
        name: str | None = None,
        role: str = "agent",
        languages: str | Iterable[str] | None = None,
        capacity: int = 3,
        telegram_user_id: int | None = None,
    ) -> Agent:
        if not _LOGIN.match(login or ""):
            raise AgentError(
                f"login {login!r} is not valid: 1-64 characters, letters, digits and . _ @ - "
                "(starting with a letter or digit)"
            )
        role = check_role(role)
        langs = parse_languages(languages)
        capacity = check_capacity(capacity)
        if await self.by_login(login) is not None:
            raise DuplicateAgent(f"an agent with login {login!r} already exists")
        telegram_user_id = await self.check_telegram_user(telegram_user_id, None)
        password_hash = await asyncio.to_thread(hash_password, password)
        agent = Agent(
            login=login,
            name=(name or login).strip()[:128] or login,
            password_hash=password_hash,
            role=role,
            languages=langs,
            capacity=capacity,
            status="offline",
            active=True,
            created_at=utcnow(),
            telegram_user_id=telegram_user_id,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(agent)
        except IntegrityError as exc:  # created concurrently
            raise DuplicateAgent(f"an agent with login {login!r} already exists") from exc
        return agent

    async def check_telegram_user(self, user_id: int | None, agent_id: int | None) -> int | None:
        """A Telegram user id to link to the agent `agent_id` (None: a new one): positive, nobody else's."""
        if user_id is None:
            return None
        if user_id <= 0:
            raise AgentError(f"telegram user id {user_id} is not a Telegram user's id (a positive number)")
        other = await self.by_telegram_user(user_id)
        if other is not None and other.id != agent_id:
            raise DuplicateAgent(f"telegram user {user_id} is already linked to agent {other.login!r}")
        return user_id

    async def by_telegram_user(self, user_id: int) -> Agent | None:
        """The agent linked to this Telegram account (the agent desk: bot/desk/)."""
        query = select(Agent).where(Agent.telegram_user_id == user_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_login(self, login: str, lock: bool = False) -> Agent | None:
        query = select(Agent).where(Agent.login == login)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get(self, agent_id: int, lock: bool = False) -> Agent | None:
        query = select(Agent).where(Agent.id == agent_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def all(self) -> Sequence[Agent]:
        return (await self.session.execute(select(Agent).order_by(Agent.login))).scalars().all()

    async def loads(self, agent_ids: Iterable[int] | None = None) -> dict[int, int]:
        """Return how many conversations each agent holds right now (open assignments)."""
        query = (
            select(Assignment.agent_id, func.count())
            .where(Assignment.ended_at.is_(None))
            .group_by(Assignment.agent_id)
        )
        if agent_ids is not None:
            query = query.where(Assignment.agent_id.in_(list(agent_ids)))
        return {int(agent_id): int(count) for agent_id, count in await self.session.execute(query)}

    async def issue_token(self, agent: Agent, ttl: timedelta) -> tuple[str, datetime]:
        return await self._issue(agent, ttl, secrets.token_urlsafe(32), token_digest)

    async def _issue(
        self,
        agent: Agent,
        ttl: timedelta,
        secret: str,
        digest: Callable[[str], str],
        parent_id: int | None = None,
    ) -> tuple[str, datetime]:
        """Store `secret` for `agent` under `digest` (never the secret itself); return it and its expiry."""
        expires = utcnow() + ttl
        self.session.add(
            AgentToken(agent_id=agent.id, token_hash=digest(secret), expires_at=expires, parent_id=parent_id)
        )
        await self.session.flush()
        return secret, expires

    async def session_for_token(self, token: str) -> tuple[Agent, int] | None:
        """Return the active agent a valid (unexpired, unrevoked) token belongs to, and the token's id.

        The id names the log-in session: event tickets are issued under it, and an open event stream
        lasts only as long as `session_is_live` says so.
        """
        query = (
            select(Agent, AgentToken.id, AgentToken.expires_at)
            .join(AgentToken, AgentToken.agent_id == Agent.id)
            .where(AgentToken.token_hash == token_digest(token), AgentToken.revoked_at.is_(None))
        )
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        agent, session_id, expires = row
        if not agent.active or as_utc(expires) <= utcnow():
            return None
        return agent, session_id

    async def agent_for_token(self, token: str) -> Agent | None:
        """Return the active agent a valid (unexpired, unrevoked) token belongs to."""
        found = await self.session_for_token(token)
        return found[0] if found is not None else None

    async def session_is_live(self, session_id: int) -> bool:
        """Is the token with this id still good: not revoked (log-out), not expired, its agent active?"""
        query = (
            select(AgentToken.id)
            .join(Agent, Agent.id == AgentToken.agent_id)
            .where(
                AgentToken.id == session_id,
                AgentToken.parent_id.is_(None),  # a token, not a ticket
                AgentToken.revoked_at.is_(None),
                AgentToken.expires_at > utcnow(),
                Agent.active.is_(True),
            )
        )
        return (await self.session.execute(query)).first() is not None

    async def issue_ticket(self, agent: Agent, ttl: timedelta, session_id: int) -> tuple[str, datetime]:
        """A single-use ticket for opening the live-event stream where a header cannot be sent.

        It is stored like a token but under a different digest (`ticket_digest`), so a ticket is never a
        bearer token and a token is never a ticket; `redeem_ticket` spends it. It belongs to the session
        (token id) `session_id` it was asked for with, and is worth nothing once that session ends.
        """
        return await self._issue(agent, ttl, secrets.token_urlsafe(24), ticket_digest, session_id)

    async def redeem_ticket(self, ticket: str) -> tuple[Agent, int] | None:
        """Spend a ticket: its active agent and session, once; None if unknown, expired, used or orphaned.

        Orphaned: the session (token) it was issued under has ended (log-out, password change...).
        """
        now = utcnow()
        spent = await self.session.execute(
            update(AgentToken)
            .where(
                AgentToken.token_hash == ticket_digest(ticket),
                AgentToken.parent_id.is_not(None),
                AgentToken.revoked_at.is_(None),
                AgentToken.expires_at > now,
            )
            .values(revoked_at=now)
            .returning(AgentToken.agent_id, AgentToken.parent_id)
        )
        found = spent.first()
        if found is None:
            return None
        agent_id, session_id = found
        if session_id is None or not await self.session_is_live(session_id):
            return None
        agent = await self.get(agent_id)
        return (agent, session_id) if agent is not None else None

    async def revoke_token(self, token: str) -> None:
        row = (
            await self.session.execute(select(AgentToken).where(AgentToken.token_hash == token_digest(token)))
        ).scalar_one_or_none()
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()

    async def purge(self, now: datetime) -> int:
        """Delete the tokens and tickets nobody can use any more (expired or revoked); return how many."""
        dead = or_(AgentToken.expires_at <= now, AgentToken.revoked_at.is_not(None))
        result = await self.session.execute(delete(AgentToken).where(dead))
        return int(cast(CursorResult[Any], result).rowcount)

    async def revoke_all(self, agent: Agent) -> None:
        rows = await self.session.execute(
            select(AgentToken).where(AgentToken.agent_id == agent.id, AgentToken.revoked_at.is_(None))
        )
        for row in rows.scalars():
            row.revoked_at = utcnow()


def public_agent(agent: Agent, load: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": agent.id,
        "login": agent.login,
        "name": agent.name,
        "role": agent.role,
        "languages": list(agent.languages or []),
        "capacity": agent.capacity,
        "status": agent.status,
        "active": agent.active,
        "last_assigned_at": iso(agent.last_assigned_at),
        "telegram_user_id": agent.telegram_user_id,
    }
    if load is not None:
        data["load"] = load
    return data


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    """A stored moment as the API shows it: ISO 8601 in UTC (None stays None)."""
    return as_utc(moment).isoformat() if moment is not None else None


def actor(agent: Agent) -> str:
    """How the audit trail names an agent: agent:<login>."""
    return f"agent:{agent.login}"
