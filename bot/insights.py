"""The supervisors' insights API: the bot's misses, and turning one into content (bearer token, supervisors).

GET /api/v1/misses lists what `supportbot kb misses` prints; POST /api/v1/kb/entries/{id}/questions and
POST /api/v1/intents/oos/examples add a missed question to the KB or to the out-of-scope examples
(bot/content_edit.py edits the file; the running bot reloads it within seconds, as for any edit of
kb/ or intents/). Each addition is an audit event (kb_question_added / oos_example_added: who, what,
which file) that also marks the miss handled. GET /api/v1/stats, the rest of the console's Insights
view, is in the agent API.
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from bot import content_edit
from bot.api_errors import api_error, errors
from bot.app import SupportBot
from bot.content_edit import AlreadyPresent, ChangedMeanwhile, ContentEdit, UnknownEntry
from bot.errors import ContentError
from bot.handoff.assignment import audit
from bot.handoff.bearer import role_agent
from bot.handoff.service import actor
from bot.misses import EXAMPLE_ADDED, QUESTION_ADDED, collect_misses
from bot.nlu.language import detect_language
from bot.storage.models import Agent, utcnow


class QuestionIn(BaseModel):
    text: str = Field(min_length=1, max_length=content_edit.MAX_TEXT, description="The customer's question")
    language: str | None = Field(
        default=None, max_length=16, description="One of kb.languages; default: detected from the text"
    )


class ExampleIn(BaseModel):
    text: str = Field(
        min_length=1, max_length=content_edit.MAX_TEXT, description="What the bot must not answer"
    )


def insights_api(bot: SupportBot) -> APIRouter:
    """Return the /api/v1 routes of the Insights view (mounted by bot/web.py next to the agent API)."""
    database, settings = bot.database, bot.settings
    router = APIRouter(prefix="/api/v1", tags=["insights"], responses=errors(401, 403))
    Supervisor = Annotated[Agent, Depends(role_agent(database, "supervisor"))]
    one_edit_at_a_time = asyncio.Lock()  # across processes, content_edit refuses a file changed meanwhile

    def shown(path: Path) -> str:
        """A content file as the editor knows it: relative to the config file's folder when inside it."""
        try:
            return str(path.resolve().relative_to(settings.base_dir.resolve()))
        except ValueError:
            return str(path)

    async def edit(change: Callable[[], ContentEdit]) -> ContentEdit:
        async with one_edit_at_a_time:
            try:
                return await asyncio.to_thread(change)
            except UnknownEntry as exc:
                raise api_error(404, "not_found", str(exc)) from exc
            except AlreadyPresent as exc:
                raise api_error(409, "already_present", str(exc)) from exc
            except ChangedMeanwhile as exc:
                raise api_error(409, "changed_meanwhile", str(exc)) from exc
            except ContentError as exc:
                raise api_error(422, "invalid_content", "; ".join(exc.problems)) from exc

    async def record(kind: str, agent: Agent, done: ContentEdit, **data: Any) -> str:
        """Audit an addition (who, the text, which file and line); return the file as the editor knows it."""
        file = shown(done.file)
        async with database.session() as session:
            audit(
                session, None, kind, actor(agent), agent.id, text=done.text, file=file, line=done.line, **data
            )
        return file

    @router.get("/misses", summary="The questions the bot missed over the last `days` days (supervisors)")
    async def misses(
        _: Supervisor,
        days: Annotated[int, Query(ge=1, le=366, description="How far back")] = 30,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many questions")] = 200,
    ) -> dict[str, Any]:
        until = utcnow()
        since = until - timedelta(days=days)
        found = await collect_misses(database, since, limit)
        return {
            "days": days,
            "since": since.isoformat(timespec="seconds"),
            "until": until.isoformat(timespec="seconds"),
            "misses": [miss.as_dict() for miss in found],
        }

    @router.get(
        "/kb/entries",
        summary="The knowledge-base entries in service: id, title, file (supervisors)",
        responses=errors(503),
    )
    async def entries(_: Supervisor) -> list[dict[str, Any]]:
        try:
            kb = bot.matcher().kb
        except RuntimeError as exc:
            raise api_error(503, "not_ready", str(exc)) from exc
        language = settings.kb.default_language
        return [
            {
                "id": entry.id,
                "title": entry.title_in(language, language),
                "tags": list(entry.tags),
                "file": shown(Path(entry.source.rsplit(":", 1)[0])),
            }
            for entry in kb.entries
        ]

    @router.post(
        "/kb/entries/{entry_id}/questions",
        status_code=201,
        summary="Add a customer's question to a KB entry (supervisors)",
        responses=errors(
            404,
            409,
            422,
            described={
                404: "No KB entry with this id",
                409: "Already a question of the entry, or the file changed meanwhile",
                422: "The question or the edited file was refused (invalid_content), or the request failed validation",
            },
        ),
    )
    async def add_question(entry_id: str, body: QuestionIn, agent: Supervisor) -> dict[str, Any]:
        language = body.language or _language_of(
            body.text, settings.kb.languages, settings.kb.default_language
        )
        done = await edit(lambda: content_edit.add_question(settings, entry_id, language, body.text))
        file = await record(QUESTION_ADDED, agent, done, entry=entry_id, language=language)
        return {"entry": entry_id, "language": language, "text": done.text, "file": file, "line": done.line}

    @router.post(
        "/intents/oos/examples",
        status_code=201,
        summary="Add a customer's question to the out-of-scope examples (supervisors)",
        responses=errors(
            409,
            422,
            described={
                409: "Already an example, or the file changed meanwhile",
                422: "The example or the edited file was refused (invalid_content), or the request failed validation",
            },
        ),
    )
    async def add_out_of_scope(body: ExampleIn, agent: Supervisor) -> dict[str, Any]:
        done = await edit(lambda: content_edit.add_out_of_scope_example(settings, body.text))
        file = await record(EXAMPLE_ADDED, agent, done)
        return {"intent": "oos", "text": done.text, "file": file, "line": done.line}

    return router


def _language_of(text: str, languages: list[str], default: str) -> str:
    detected = detect_language(text)[0]
    return detected if detected in languages else default
