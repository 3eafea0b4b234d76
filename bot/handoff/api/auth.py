"""Logging in and out of the agent API, and the single-use tickets that open the event stream.

Log-in failures are limited per login name and per client address (bot/web/ratelimit.py; 429 and
Retry-After). A log-out ends the token and, with it, the event streams opened under it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from bot.config import HandoffSettings
from bot.handoff.agents import AgentRepository, actor, has_role, iso, verify_password
from bot.handoff.api.deps import Credentials, CurrentAgent, CurrentSession, DeskDep, LimiterDep
from bot.handoff.api.schemas import AgentOut, LoginOut, TicketOut
from bot.handoff.assignment import audit
from bot.storage.database import Database
from bot.storage.models import Agent
from bot.web.errors import api_error, errors
from bot.web.ratelimit import Quota

router = APIRouter()


class LoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@router.post(
    "/auth/login",
    response_model=LoginOut,
    summary="Log in; returns a bearer token",
    responses=errors(
        401,
        429,
        described={
            401: "Wrong login or password",
            429: "Too many failed log-ins for this login or address: wait Retry-After seconds",
        },
    ),
)
async def login(body: LoginIn, request: Request, desk: DeskDep, limiter: LimiterDep) -> LoginOut:
    # Every attempt is counted before the password is checked (so parallel guesses cannot slip past
    # the limit); a successful one clears the account's count and is taken back from the address's.
    account, address = _quotas(request, body.login, desk.config)
    attempt = await limiter.hit(account, address)
    if not attempt.allowed:
        retry = attempt.retry_seconds
        raise api_error(
            429,
            "rate_limited",
            f"too many failed log-ins: try again in {retry} s",
            {"Retry-After": str(retry)},
        )
    agent = await _with_password(desk.database, body.login, body.password)
    await limiter.reset(account.key)
    await limiter.undo(attempt, address.key)
    async with desk.database.session() as session:
        token, expires = await AgentRepository(session).issue_token(
            agent, timedelta(hours=desk.config.token_ttl_hours)
        )
        audit(session, None, "agent_login", actor(agent), agent.id)
    return LoginOut(token=token, token_type="bearer", expires_at=iso(expires), agent=AgentOut.of(agent))


@router.post("/auth/logout", status_code=204, summary="Revoke this token")
async def logout(agent: CurrentAgent, credentials: Credentials, desk: DeskDep) -> Response:
    async with desk.database.session() as session:
        if credentials is not None:
            await AgentRepository(session).revoke_token(credentials.credentials)
        audit(session, None, "agent_logout", actor(agent), agent.id)
    desk.notifier.notify()  # this session's open event streams end now
    return Response(status_code=204)


@router.post(
    "/events/ticket",
    status_code=201,
    response_model=TicketOut,
    summary="A single-use ticket to open /api/v1/events where no header can be sent (EventSource)",
    responses=errors(403),
)
async def events_ticket(logged_in: CurrentSession, desk: DeskDep) -> TicketOut:
    agent, session_id = logged_in
    if not has_role(agent, "agent"):
        raise api_error(403, "forbidden", "content editors do not see customers' conversations")
    ttl = desk.config.events_ticket_seconds
    async with desk.database.session() as session:
        ticket, expires = await AgentRepository(session).issue_ticket(
            agent, timedelta(seconds=ttl), session_id
        )
    return TicketOut(ticket=ticket, expires_at=iso(expires), expires_in=ttl)


def _quotas(request: Request, login: str, config: HandoffSettings) -> tuple[Quota, Quota]:
    """The log-in failures allowed for this login name and for this client address."""
    window = config.login_window_seconds
    address = request.client.host if request.client else "unknown"
    return (
        Quota(f"login:account:{login.strip().casefold()}", config.login_max_failures, window),
        Quota(f"login:address:{address}", config.login_max_failures_per_address, window),
    )


async def _with_password(database: Database, login: str, password: str) -> Agent:
    """The active agent with this login and password; 401, the same for either mistake, otherwise."""
    async with database.session() as session:
        agent = await AgentRepository(session).by_login(login)
    password_hash = agent.password_hash if agent is not None and agent.active else None
    if not await asyncio.to_thread(verify_password, password_hash, password):
        raise api_error(401, "unauthorized", "wrong login or password")
    assert agent is not None
    return agent
