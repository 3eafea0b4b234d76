"""The supervisors' Code Red and kudos lists: GET /api/v1/flags and GET /api/v1/kudos (bearer token).

Each row says which signal raised it and why (bot/insights/flags.py); Code Red rows say whether the
conversation is resolved yet, kudos rows name the agent who resolved it, to share with the team.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import select

from bot.handoff.agents import iso
from bot.handoff.api.deps import SupervisorAgent
from bot.insights.flags import CODE_RED, KUDOS
from bot.storage.models import Agent, Conversation, ConversationFlag, Customer, utcnow
from bot.web.body import Body
from bot.web.deps import BotDep
from bot.web.errors import errors

Days = Annotated[int, Query(ge=1, le=366, description="How far back")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first")]

router = APIRouter(prefix="/api/v1", tags=["insights"], responses=errors(401, 403))


class FlagOut(Body):
    id: int
    conversation_id: int
    kind: str = Field(description="code_red / kudos")
    signal: str = Field(description="what raised it: complaint, repeat_contact, low_csat, compliment...")
    reason: dict[str, Any] = Field(description='why, in words ("why") and figures')
    text: str | None = Field(description="the customer's words, where the signal came from some")
    created_at: str
    customer: str | None = Field(description="the customer's display name")
    channel: str
    state: str = Field(description="the conversation's state now")
    resolved: bool
    agent: str | None = Field(description="who holds or resolved it (login)")


async def _flags(bot: Any, kind: str, days: int, limit: int) -> list[FlagOut]:
    since = utcnow() - timedelta(days=days)
    query = (
        select(ConversationFlag, Conversation, Customer.display_name, Agent.login)
        .join(Conversation, Conversation.id == ConversationFlag.conversation_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(Agent, Agent.id == Conversation.assigned_agent_id)
        .where(ConversationFlag.kind == kind, ConversationFlag.created_at >= since)
        .order_by(ConversationFlag.id.desc())
        .limit(limit)
    )
    async with bot.database.session() as session:
        rows = (await session.execute(query)).all()
    return [
        FlagOut(
            id=flag.id,
            conversation_id=conversation.id,
            kind=flag.kind,
            signal=flag.signal,
            reason=flag.reason or {},
            text=flag.text,
            created_at=iso(flag.created_at) or "",
            customer=name,
            channel=conversation.channel,
            state=conversation.state,
            resolved=conversation.resolved_at is not None,
            agent=login or (flag.reason or {}).get("agent"),
        )
        for flag, conversation, name, login in rows
    ]


@router.get("/flags", response_model=list[FlagOut], summary="Code Red: likely unhappy customers, and why")
async def code_red(_: SupervisorAgent, bot: BotDep, days: Days = 7, limit: Limit = 200) -> list[FlagOut]:
    return await _flags(bot, CODE_RED, days, limit)


@router.get("/kudos", response_model=list[FlagOut], summary="Kudos: compliments and top ratings with words")
async def kudos(_: SupervisorAgent, bot: BotDep, days: Days = 30, limit: Limit = 200) -> list[FlagOut]:
    return await _flags(bot, KUDOS, days, limit)
