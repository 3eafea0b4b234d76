"""The bearer-token dependencies of the agent API and the routes beside it (the console's, the insights).

The token is the one POST /api/v1/auth/login returns, in `Authorization: Bearer ...` (401 without a
valid one); a route that needs a role answers 403 to agents below it.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.handoff.agents import AgentRepository, has_role
from bot.storage.database import Database
from bot.storage.models import Agent
from bot.web.errors import api_error

bearer = HTTPBearer(auto_error=False, description="The token from POST /api/v1/auth/login")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def authenticate(database: Database, token: str | None) -> tuple[Agent, int]:
    """Return the agent and the log-in session (token id) of a bearer token; 401 without a valid one."""
    if not token:
        raise api_error(401, "unauthorized", "missing bearer token: log in with POST /api/v1/auth/login")
    async with database.session() as session:
        found = await AgentRepository(session).session_for_token(token)
    if found is None:
        raise api_error(401, "unauthorized", "invalid or expired token: log in again")
    return found


def token_session(database: Database) -> Callable[..., Awaitable[tuple[Agent, int]]]:
    """Return a dependency that yields (agent, session id) for the bearer token that came with the request."""

    async def current_session(credentials: Credentials) -> tuple[Agent, int]:
        return await authenticate(database, credentials.credentials if credentials else None)

    return current_session


def token_agent(database: Database) -> Callable[..., Awaitable[Agent]]:
    """Return a dependency that yields the agent whose bearer token came with the request."""
    current_session = token_session(database)

    async def current_agent(logged_in: Annotated[tuple[Agent, int], Depends(current_session)]) -> Agent:
        return logged_in[0]

    return current_agent


def role_agent(database: Database, role: str) -> Callable[..., Awaitable[Agent]]:
    """Return a dependency like token_agent's that also requires `role` or above."""
    current_agent = token_agent(database)

    async def with_role(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
        if not has_role(agent, role):
            raise api_error(403, "forbidden", f"this needs the {role} role (you are {agent.role})")
        return agent

    return with_role
