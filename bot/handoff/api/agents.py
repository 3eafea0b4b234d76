"""The agents: who I am and my status; all agents for supervisors; creating and changing them for admins."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bot.handoff import accounts
from bot.handoff.accounts import AgentChanges
from bot.handoff.agents import AgentRepository, actor
from bot.handoff.api.deps import (
    AdminAgent,
    CurrentAgent,
    DatabaseDep,
    DeskAgent,
    DeskDep,
    MovesDep,
    SupervisorAgent,
)
from bot.handoff.api.refusals import refusals
from bot.handoff.api.schemas import AgentLoadOut, StatusOut
from bot.web.errors import api_error, errors

router = APIRouter()
Status = Literal["online", "away", "offline"]
Role = Literal["agent", "supervisor", "admin", "editor"]


class StatusIn(BaseModel):
    status: Status


class AgentIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    name: str | None = Field(default=None, max_length=128)
    role: Role = "agent"
    languages: list[str] = []
    capacity: int = Field(default=3, ge=0, le=50)
    telegram_user_id: int | None = Field(
        default=None,
        gt=0,
        description="Their Telegram account: what they write in the agent desk reaches customers",
    )


class AgentPatch(BaseModel):
    name: str | None = Field(default=None, max_length=128)
    role: Role | None = None
    languages: list[str] | None = None
    capacity: int | None = Field(default=None, ge=0, le=50)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    status: Status | None = None
    telegram_user_id: int | None = Field(
        default=None, ge=0, description="Link a Telegram account; null or 0 unlinks"
    )


# /agents/me... before /agents/{login}...: "me" is no login here


@router.get("/agents/me", response_model=AgentLoadOut, summary="Who am I, with my current load")
async def me(agent: CurrentAgent, database: DatabaseDep) -> AgentLoadOut:
    return AgentLoadOut.loaded(agent, await accounts.load_of(database, agent))


@router.put(
    "/agents/me/status", response_model=StatusOut, summary="Go online (get conversations), away, or offline"
)
async def my_status(body: StatusIn, agent: DeskAgent, moves: MovesDep) -> StatusOut:
    with refusals():
        change = await moves.set_status(agent.id, body.status, actor(agent))
    mine = [a.conversation_id for a in change.assigned if a.agent_id == agent.id]
    return StatusOut(status=change.status, assigned=mine, requeued=change.requeued)


@router.get(
    "/agents",
    response_model=list[AgentLoadOut],
    summary="All agents with status and load (supervisors)",
    responses=errors(403),
)
async def list_agents(_: SupervisorAgent, database: DatabaseDep) -> list[AgentLoadOut]:
    return [AgentLoadOut.loaded(agent, load) for agent, load in await accounts.roster(database)]


@router.post(
    "/agents",
    status_code=201,
    response_model=AgentLoadOut,
    summary="Create an agent (admins)",
    responses=errors(403, 409, 422, described={409: "An agent with this login exists"}),
)
async def create_agent(body: AgentIn, admin: AdminAgent, database: DatabaseDep) -> AgentLoadOut:
    with refusals():
        agent = await accounts.create_agent(
            database,
            body.login,
            body.password,
            body.name,
            body.role,
            body.languages,
            body.capacity,
            admin,
            body.telegram_user_id,
        )
    return AgentLoadOut.loaded(agent, 0)


@router.patch(
    "/agents/{login}",
    response_model=AgentLoadOut,
    summary="Change an agent (admins)",
    responses=errors(403, 404, 422),
)
async def update_agent(
    login: str, body: AgentPatch, admin: AdminAgent, desk: DeskDep, moves: MovesDep
) -> AgentLoadOut:
    with refusals():
        changes = body.model_dump()
        if "telegram_user_id" in body.model_fields_set and body.telegram_user_id is None:
            changes["telegram_user_id"] = 0  # an explicit null unlinks
        agent = await accounts.change_agent(desk, moves, login, AgentChanges(**changes), admin)
    return AgentLoadOut.loaded(agent, await accounts.load_of(desk.database, agent))


@router.put(
    "/agents/{login}/status",
    response_model=StatusOut,
    summary="Set another agent's status (supervisors)",
    responses=errors(403, 404),
)
async def agent_status(
    login: str, body: StatusIn, supervisor: SupervisorAgent, database: DatabaseDep, moves: MovesDep
) -> StatusOut:
    async with database.session() as session:
        agent = await AgentRepository(session).by_login(login)
    if agent is None:
        raise api_error(404, "not_found", f"no agent with login {login!r}")
    with refusals():
        change = await moves.set_status(agent.id, body.status, actor(supervisor))
    theirs = [a.conversation_id for a in change.assigned if a.agent_id == agent.id]
    return StatusOut(status=change.status, assigned=theirs, requeued=change.requeued)
