"""What the agent API's routes (and the console's and the insights' beside them) depend on.

Each is an `Annotated` alias, so a route's signature says what it needs: the desk and its moves, the
database, the log-in limiter (all of the running service, `request.app.state.bot`, which bot/web/app.py
sets), and the agent behind the bearer token (`CurrentAgent`, 401 without a valid one) with the role
checks (`DeskAgent`, `SupervisorAgent`, `AdminAgent`: 403 below the role; `EditorAgent` for the content). The token is the one
POST /api/v1/auth/login returns, in `Authorization: Bearer ...`.

The routes here are the live desk's own (`LiveHandoff.routers`), so the service's handoff is that desk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.config import HandoffSettings
from bot.handoff.agents import AgentRepository, has_role
from bot.handoff.desk import Desk
from bot.handoff.moves import Moves
from bot.storage import agent_view
from bot.storage.database import Database
from bot.storage.models import MAX_ID, Agent, Conversation
from bot.storage.repositories import ConversationRepository
from bot.web.errors import api_error
from bot.web.ratelimit import Limiter

bearer = HTTPBearer(auto_error=False, description="The token from POST /api/v1/auth/login")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
ConversationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The conversation's id")]


# --- the running service ---------------------------------------------------------------------------


def running_desk(request: Request) -> Desk:
    desk: Desk = request.app.state.bot.handoff
    return desk


def running_moves(request: Request) -> Moves:
    moves: Moves = request.app.state.bot.handoff.moves
    return moves


def running_database(request: Request) -> Database:
    database: Database = request.app.state.bot.database
    return database


def running_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.bot.limiter
    return limiter


DeskDep = Annotated[Desk, Depends(running_desk)]
MovesDep = Annotated[Moves, Depends(running_moves)]
DatabaseDep = Annotated[Database, Depends(running_database)]
LimiterDep = Annotated[Limiter, Depends(running_limiter)]


# --- who is asking ---------------------------------------------------------------------------------


async def authenticate(database: Database, token: str | None) -> tuple[Agent, int]:
    """Return the agent and the log-in session (token id) of a bearer token; 401 without a valid one."""
    if not token:
        raise api_error(401, "unauthorized", "missing bearer token: log in with POST /api/v1/auth/login")
    async with database.session() as session:
        found = await AgentRepository(session).session_for_token(token)
    if found is None:
        raise api_error(401, "unauthorized", "invalid or expired token: log in again")
    return found


async def current_session(credentials: Credentials, database: DatabaseDep) -> tuple[Agent, int]:
    """The agent and log-in session of the bearer token that came with the request."""
    return await authenticate(database, credentials.credentials if credentials else None)


CurrentSession = Annotated[tuple[Agent, int], Depends(current_session)]


async def current_agent(logged_in: CurrentSession) -> Agent:
    """The agent whose bearer token came with the request."""
    return logged_in[0]


CurrentAgent = Annotated[Agent, Depends(current_agent)]


def agent_with_role(role: str) -> Callable[[Agent], Awaitable[Agent]]:
    """Return a dependency like `current_agent` that also requires `role` or above (403 below it)."""

    async def with_role(agent: CurrentAgent) -> Agent:
        if not has_role(agent, role):
            raise api_error(403, "forbidden", f"this needs the {role} role (you are {agent.role})")
        return agent

    return with_role


# DeskAgent: an agent, supervisor or admin (an editor gets 403: customers' conversations are not theirs);
# EditorAgent: who may edit the content and see how it does (editors, supervisors, admins).
DeskAgent = Annotated[Agent, Depends(agent_with_role("agent"))]
EditorAgent = Annotated[Agent, Depends(agent_with_role("editor"))]
SupervisorAgent = Annotated[Agent, Depends(agent_with_role("supervisor"))]
AdminAgent = Annotated[Agent, Depends(agent_with_role("admin"))]


# --- what they may see -----------------------------------------------------------------------------


async def visible_conversation(
    database: Database, agent: Agent, conversation_id: int, settings: HandoffSettings, write: bool = False
) -> Conversation:
    """The conversation, if the agent may read it (or write to it: notes); 404 if there is none, 403 if
    not (the rule: bot/storage/agent_view.py `access`)."""
    async with database.session() as session:
        conversation = await ConversationRepository(session).get(conversation_id)
        if conversation is None:
            raise api_error(404, "not_found", f"no conversation with id {conversation_id}")
        reads = timedelta(hours=settings.past_holder_read_hours)
        allowed = await agent_view.access(
            session, conversation, agent.id, has_role(agent, "supervisor"), reads
        )
    if allowed is None:
        raise api_error(403, "forbidden", "this conversation is with another agent (supervisors see all)")
    if write and allowed != "write":
        raise api_error(
            403,
            "forbidden",
            "you held this conversation before: you may read it for a while, not write to it",
        )
    return conversation


async def _visible_in_path(
    conversation_id: ConversationId, agent: DeskAgent, database: DatabaseDep, desk: DeskDep
) -> Conversation:
    return await visible_conversation(database, agent, conversation_id, desk.config)


# For routes whose only input is the path: elsewhere a bad body or query must answer 422 before the
# conversation is looked at, as it always has, so those routes call visible_conversation themselves.
VisibleConversation = Annotated[Conversation, Depends(_visible_in_path)]
