"""The bearer-token dependencies of the routes beside the agent API (the console's, the insights).

The token is the one POST /api/v1/auth/login returns, in `Authorization: Bearer ...` (401 without a
valid one); a route that needs a role answers 403 to agents below it.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.handoff.agents import AgentRepository, has_role
from bot.storage.database import Database
from bot.storage.models import Agent

_bearer = HTTPBearer(auto_error=False, description="The token from POST /api/v1/auth/login")


def api_error(status: int, code: str, message: str) -> HTTPException:
    """Return the API's error shape: {"detail": {"code", "message"}} (with WWW-Authenticate on 401)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail={"code": code, "message": message}, headers=headers)


def token_agent(database: Database) -> Callable[..., Awaitable[Agent]]:
    """Return a dependency that yields the agent whose bearer token came with the request."""

    async def current_agent(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Agent:
        if credentials is None:
            raise api_error(401, "unauthorized", "missing bearer token: log in with POST /api/v1/auth/login")
        async with database.session() as session:
            agent = await AgentRepository(session).agent_for_token(credentials.credentials)
        if agent is None:
            raise api_error(401, "unauthorized", "invalid or expired token: log in again")
        return agent

    return current_agent


def role_agent(database: Database, role: str) -> Callable[..., Awaitable[Agent]]:
    """Return a dependency like token_agent's that also requires `role` or above."""
    current_agent = token_agent(database)

    async def with_role(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
        if not has_role(agent, role):
            raise api_error(403, "forbidden", f"this needs the {role} role (you are {agent.role})")
        return agent

    return with_role
