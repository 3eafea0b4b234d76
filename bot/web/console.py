"""The console's own API under /api/v1/console: what the agent console needs beyond the agent API.

The console (bot/web/pages.py, bot/web/static/console.js) is a page over the agent API with its bearer
token (no cookies: nothing a form on another site could forge). This adds its settings and canned
responses, suggested answers from the knowledge base, unread counts, and the online agents to transfer to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from bot.app import SupportBot
from bot.handoff import accounts
from bot.handoff.agents import iso
from bot.handoff.api.deps import CurrentAgent, DeskAgent, visible_conversation
from bot.handoff.api.schemas import AgentOut
from bot.storage import agent_view
from bot.storage.models import MAX_ID, Message, utcnow
from bot.web.body import Body
from bot.web.deps import BotDep
from bot.web.errors import api_error, errors

SUGGESTIONS = 3
SKIP_FOR_SUGGESTIONS = frozenset({"handoff", "respond"})  # "a person, please", "thanks": not questions

router = APIRouter(prefix="/api/v1/console", tags=["console"], responses=errors(401, 403))


class CannedResponseOut(Body):
    title: str
    text: dict[str, str]


class ConsoleSettingsOut(Body):
    agent: AgentOut
    sla_first_response: float
    agent_reply_timeout: float
    languages: list[str]
    default_language: str
    canned_responses: list[CannedResponseOut]
    server_time: str


class QuestionOut(Body):
    id: int
    text: str


class SuggestionOut(Body):
    """A KB entry's answer the agent may send, and whether the bot already gave it in this conversation."""

    entry: str
    title: str
    answer: str
    score: float
    already_answered: bool


class SuggestionsOut(Body):
    language: str
    for_message: QuestionOut | None
    suggestions: list[SuggestionOut]


class UnreadOut(Body):
    conversation_id: int
    customer_message_ids: list[int]


class OnlineAgentOut(Body):
    login: str
    name: str
    languages: list[str]
    capacity: int
    load: int
    me: bool


@router.get(
    "/settings",
    response_model=ConsoleSettingsOut,
    summary="Canned responses, SLA thresholds, languages; who I am",
)
async def console_settings(agent: CurrentAgent, bot: BotDep) -> ConsoleSettingsOut:
    settings = bot.settings
    return ConsoleSettingsOut(
        agent=AgentOut.of(agent),
        sla_first_response=settings.handoff.sla_first_response,
        agent_reply_timeout=settings.handoff.agent_reply_timeout,
        languages=settings.kb.languages,
        default_language=settings.kb.default_language,
        canned_responses=[
            CannedResponseOut.model_validate(c.model_dump()) for c in settings.console.canned_responses
        ],
        server_time=iso(utcnow()),
    )


@router.get(
    "/conversations/{conversation_id}/suggestions",
    response_model=SuggestionsOut,
    summary="The top KB answers for the customer's last question, in the conversation's language",
    responses=errors(403, 404, 503),
)
async def suggestions(
    conversation_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
    agent: DeskAgent,
    bot: BotDep,
    limit: Annotated[int, Query(ge=1, le=10)] = SUGGESTIONS,
) -> SuggestionsOut:
    conversation = await visible_conversation(bot.database, agent, conversation_id, bot.settings.handoff)
    language = conversation.language or bot.settings.kb.default_language
    async with bot.database.session() as session:
        inbound = await agent_view.latest_inbound(session, conversation.id)
    question = _last_question(inbound)
    if question is None:
        return SuggestionsOut(language=language, for_message=None, suggestions=[])
    answered = {
        str((m.decision or {}).get("label"))
        for m in inbound
        if (m.decision or {}).get("decision") == "answer" and (m.decision or {}).get("kind") == "answer"
    }
    return SuggestionsOut(
        language=language,
        for_message=QuestionOut(id=question.id, text=question.text),
        suggestions=await _answers_for(bot, question.text, language, answered, limit),
    )


@router.get(
    "/unread",
    response_model=list[UnreadOut],
    summary="For my open conversations: customer messages since my last reply",
)
async def unread(agent: DeskAgent, bot: BotDep) -> list[UnreadOut]:
    # The console hides the ones this browser has already shown (it remembers the last id it showed).
    async with bot.database.session() as session:
        found = await agent_view.unread(session, agent.id)
    return [UnreadOut(conversation_id=c, customer_message_ids=ids) for c, ids in found.items()]


@router.get(
    "/agents",
    response_model=list[OnlineAgentOut],
    summary="Online agents with their load: whom a conversation can go to",
)
async def online_agents(agent: DeskAgent, bot: BotDep) -> list[OnlineAgentOut]:
    return [
        OnlineAgentOut(
            login=other.login,
            name=other.name,
            languages=list(other.languages or []),
            capacity=other.capacity,
            load=load,
            me=other.id == agent.id,
        )
        for other, load in await accounts.roster(bot.database, online_only=True)
    ]


def _last_question(inbound: Sequence[Message]) -> Message | None:
    """The customer's newest message that asks something (not a button, not "a person, please")."""
    texts = [m for m in inbound if (m.text or "").strip() and not m.payload]
    for message in texts:
        if (message.decision or {}).get("kind") not in SKIP_FOR_SUGGESTIONS:
            return message
    return texts[0] if texts else None


async def _answers_for(
    bot: SupportBot, question: str, language: str, answered: set[str], limit: int
) -> list[SuggestionOut]:
    """The KB entries closest to `question`, best first, each once, in `language` (503 without a model)."""
    default = bot.settings.kb.default_language
    try:
        matcher = bot.matcher()
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc
    loop = asyncio.get_running_loop()
    candidates = await loop.run_in_executor(bot.executor, matcher.candidates, question)
    found: list[SuggestionOut] = []
    for candidate in candidates:
        entry = matcher.kb.get(candidate.label) if candidate.kind == "kb" else None
        if entry is None or any(s.entry == entry.id for s in found):
            continue
        found.append(
            SuggestionOut(
                entry=entry.id,
                title=entry.title_in(language, default),
                answer=entry.answer_in(language, default),
                score=round(float(candidate.score), 3),
                already_answered=entry.id in answered,
            )
        )
        if len(found) >= limit:
            break
    return found
