"""The pages `supportbot run` serves: the demo shop with the chat widget (/) and the agent console (/agent).

The console is a page plus a little JavaScript (bot/web/static/console.js) over the agent API (/api/v1, bearer
token, no cookies: nothing a form on another site could forge). This module adds what the console needs
beyond that API, under /api/v1/console: its settings and canned responses, suggested answers from the
knowledge base, unread counts, and the online agents to transfer to. It also creates the demo agent that
`supportbot run` prints on the embedded defaults.
"""

import asyncio
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import __version__
from bot.app import SupportBot
from bot.config import Settings
from bot.handoff.agents import AgentError, AgentRepository, has_role, iso, public_agent, verify_password
from bot.handoff.bearer import token_agent
from bot.states import State
from bot.storage.database import Database
from bot.storage.models import MAX_ID, Agent, Assignment, Conversation, Message, utcnow
from bot.web.errors import api_error, errors

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
DEMO_LOGIN = "demo"
SUGGESTIONS = 3
# Defence in depth: no inline script, nothing from other hosts. Customer text is set with textContent anyway.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
SKIP_FOR_SUGGESTIONS = frozenset({"handoff", "respond"})  # "a person, please", "thanks": not questions


# --- the console's extra API ---------------------------------------------------------------------


def console_api(bot: SupportBot) -> APIRouter:
    """Return /api/v1/console: what the console needs beyond the agent API (same bearer token)."""
    database = bot.database
    settings = bot.settings
    router = APIRouter(prefix="/api/v1/console", tags=["console"], responses=errors(401))

    Me = Annotated[Agent, Depends(token_agent(database))]

    async def visible(session: AsyncSession, agent: Agent, conversation_id: int) -> Conversation:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise api_error(404, "not_found", f"no conversation with id {conversation_id}")
        if (
            has_role(agent, "supervisor")
            or conversation.state == State.WAITING
            or conversation.assigned_agent_id == agent.id
        ):
            return conversation
        held = await session.execute(
            select(Assignment.id)
            .where(Assignment.conversation_id == conversation.id, Assignment.agent_id == agent.id)
            .limit(1)
        )
        if held.first() is None:
            raise api_error(403, "forbidden", "this conversation is with another agent (supervisors see all)")
        return conversation

    @router.get("/settings", summary="Canned responses, SLA thresholds, languages; who I am")
    async def console_settings(agent: Me) -> dict[str, Any]:
        return {
            "agent": public_agent(agent),
            "sla_first_response": settings.handoff.sla_first_response,
            "agent_reply_timeout": settings.handoff.agent_reply_timeout,
            "languages": settings.kb.languages,
            "default_language": settings.kb.default_language,
            "canned_responses": [c.model_dump() for c in settings.console.canned_responses],
            "server_time": iso(utcnow()),
        }

    @router.get(
        "/conversations/{conversation_id}/suggestions",
        summary="The top KB answers for the customer's last question, in the conversation's language",
        responses=errors(403, 404, 503),
    )
    async def suggestions(
        conversation_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
        agent: Me,
        limit: Annotated[int, Query(ge=1, le=10)] = SUGGESTIONS,
    ) -> dict[str, Any]:
        default = settings.kb.default_language
        async with database.session() as session:
            conversation = await visible(session, agent, conversation_id)
            language = conversation.language or default
            inbound = (
                (
                    await session.execute(
                        select(Message)
                        .where(Message.conversation_id == conversation.id, Message.direction == "in")
                        .order_by(Message.id.desc())
                        .limit(50)
                    )
                )
                .scalars()
                .all()
            )
        answered = {
            str((m.decision or {}).get("label"))
            for m in inbound
            if (m.decision or {}).get("decision") == "answer" and (m.decision or {}).get("kind") == "answer"
        }
        question = _last_question(inbound)
        result: dict[str, Any] = {"language": language, "for_message": None, "suggestions": []}
        if question is None:
            return result
        result["for_message"] = {"id": question.id, "text": question.text}
        try:
            matcher = bot.matcher()
        except RuntimeError as exc:
            raise api_error(503, "not_ready", str(exc)) from exc
        loop = asyncio.get_running_loop()
        candidates = await loop.run_in_executor(bot.executor, matcher.candidates, question.text)
        seen: set[str] = set()
        for candidate in candidates:
            if candidate.kind != "kb" or candidate.label in seen:
                continue
            entry = matcher.kb.get(candidate.label)
            if entry is None:
                continue
            seen.add(entry.id)
            result["suggestions"].append(
                {
                    "entry": entry.id,
                    "title": entry.title_in(language, default),
                    "answer": entry.answer_in(language, default),
                    "score": round(float(candidate.score), 3),
                    "already_answered": entry.id in answered,
                }
            )
            if len(result["suggestions"]) >= limit:
                break
        return result

    @router.get("/unread", summary="For my open conversations: customer messages since my last reply")
    async def unread(agent: Me) -> list[dict[str, Any]]:
        # The console hides the ones this browser has already shown (it remembers the last id it showed).
        async with database.session() as session:
            mine = list(
                (
                    await session.execute(
                        select(Conversation.id).where(
                            Conversation.assigned_agent_id == agent.id,
                            Conversation.state == State.WITH_AGENT,
                        )
                    )
                ).scalars()
            )
            if not mine:
                return []
            replied: dict[int, int] = {
                conversation_id: last
                for conversation_id, last in await session.execute(
                    select(Message.conversation_id, func.max(Message.id))
                    .where(Message.conversation_id.in_(mine), Message.sender == "agent")
                    .group_by(Message.conversation_id)
                )
            }
            rows = await session.execute(
                select(Message.conversation_id, Message.id)
                .where(Message.conversation_id.in_(mine), Message.direction == "in", Message.text != "")
                .order_by(Message.id)
            )
            ids: dict[int, list[int]] = {conversation_id: [] for conversation_id in mine}
            for conversation_id, message_id in rows:
                if message_id > (replied.get(conversation_id) or 0):
                    ids[conversation_id].append(message_id)
        return [
            {"conversation_id": conversation_id, "customer_message_ids": found[-99:]}
            for conversation_id, found in ids.items()
        ]

    @router.get("/agents", summary="Online agents with their load: whom a conversation can go to")
    async def online_agents(agent: Me) -> list[dict[str, Any]]:
        async with database.session() as session:
            repo = AgentRepository(session)
            agents = [a for a in await repo.all() if a.active and a.status == "online"]
            loads = await repo.loads([a.id for a in agents])
        return [
            {
                "login": a.login,
                "name": a.name,
                "languages": list(a.languages or []),
                "capacity": a.capacity,
                "load": loads.get(a.id, 0),
                "me": a.id == agent.id,
            }
            for a in agents
        ]

    return router


def _last_question(inbound: Any) -> Message | None:
    """The customer's newest message that asks something (not a button, not "a person, please")."""
    texts = [m for m in inbound if (m.text or "").strip() and not m.payload]
    for message in texts:
        if (message.decision or {}).get("kind") not in SKIP_FOR_SUGGESTIONS:
            return message
    return texts[0] if texts else None


# --- the pages -----------------------------------------------------------------------------------


def pages(bot: SupportBot) -> APIRouter:
    """Return the HTML routes: / (the demo shop, when the web chat is on) and /agent (the console)."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    router = APIRouter(include_in_schema=False)
    console = bot.settings.console
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    if console.demo_page and "webchat" in bot.channels:

        @router.get("/", response_class=HTMLResponse)
        async def shop(request: Request) -> HTMLResponse:
            return templates.TemplateResponse(request, "shop.html", {"version": __version__}, headers=headers)

    if console.enabled:

        @router.get("/agent", response_class=HTMLResponse)
        async def agent_console(request: Request) -> HTMLResponse:
            return templates.TemplateResponse(
                request,
                "agent.html",
                {"version": __version__},
                headers={**headers, "X-Frame-Options": "DENY"},
            )

    return router


def install_console(app: FastAPI, bot: SupportBot) -> None:
    """Mount /static and add the pages and /api/v1/console to `app` (called by bot/web/app.py)."""
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(pages(bot))
    if bot.settings.console.enabled:
        app.include_router(console_api(bot))


# --- the demo agent ------------------------------------------------------------------------------


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
