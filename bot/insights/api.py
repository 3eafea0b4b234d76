"""The supervisors' insights API: the numbers, the bot's misses, how its answers land, and turning a miss
into content (bearer token; the numbers for supervisors, the rest also for content editors).

GET /api/v1/stats gives the support lead's numbers (bot/insights/stats.py). GET /api/v1/misses lists what
`supportbot kb misses` prints, GET /api/v1/answers how each KB entry's answers were received
(bot/insights/answers.py); both come as CSV files too (/api/v1/misses.csv, /api/v1/answers.csv, made safe
to open in a spreadsheet by bot/insights/csv_export.py). POST /api/v1/kb/entries/{id}/questions and
POST /api/v1/intents/oos/examples add a missed question to the KB or to the out-of-scope examples
(bot/content/edit.py edits the file; the running bot reloads it within seconds, as for any edit of kb/ or
intents/). Each addition is an audit event (kb_question_added / oos_example_added: who, what, which file)
that also marks the miss handled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from bot.app import SupportBot
from bot.content import edit as content_edit
from bot.content.edit import AlreadyPresent, ChangedMeanwhile, ContentEdit, UnknownEntry
from bot.content.knowledge import KnowledgeBase
from bot.content.misses import COLUMNS as MISS_COLUMNS
from bot.content.misses import EXAMPLE_ADDED, QUESTION_ADDED, Miss, collect_misses
from bot.errors import ContentError
from bot.handoff.agents import actor
from bot.handoff.api.deps import EditorAgent, SupervisorAgent
from bot.handoff.assignment import audit
from bot.insights.answers import COLUMNS as ANSWER_COLUMNS
from bot.insights.answers import EntryAnswers, collect_answers
from bot.insights.csv_export import csv_bytes
from bot.insights.schemas import (
    AnswersOut,
    ExampleAddedOut,
    MissesOut,
    QuestionAddedOut,
    StatsOut,
)
from bot.insights.stats import compute_stats
from bot.nlu.language import detect_language
from bot.storage.models import Agent, utcnow
from bot.web.deps import BotDep
from bot.web.errors import api_error, errors

Days = Annotated[int, Query(ge=1, le=366, description="How far back")]
MissLimit = Annotated[int, Query(ge=1, le=1000, description="At most this many questions")]
CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A CSV file, UTF-8 with a byte-order mark, cells safe to open in a spreadsheet",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}

log = logging.getLogger(__name__)
_NOT_APPLIED = (
    "Written to the file, but not in service (yet): the reload failed or is still running (see status)"
)
router = APIRouter(prefix="/api/v1", tags=["insights"], responses=errors(401, 403))


class QuestionIn(BaseModel):
    text: str = Field(min_length=1, max_length=content_edit.MAX_TEXT, description="The customer's question")
    language: str | None = Field(
        default=None, max_length=16, description="One of kb.languages; default: detected from the text"
    )


class ExampleIn(BaseModel):
    text: str = Field(
        min_length=1, max_length=content_edit.MAX_TEXT, description="What the bot must not answer"
    )


@router.get(
    "/stats",
    response_model=StatsOut,
    summary="The support lead's numbers over the last `days` days (supervisors)",
)
async def stats(_: SupervisorAgent, bot: BotDep, days: Days = 30) -> StatsOut:
    return StatsOut.model_validate((await compute_stats(bot.database, days)).as_dict())


@router.get(
    "/misses",
    response_model=MissesOut,
    summary="The questions the bot missed over the last `days` days (editors, supervisors)",
)
async def misses(_: EditorAgent, bot: BotDep, days: Days = 30, limit: MissLimit = 200) -> MissesOut:
    since, until, found = await _missed(bot, days, limit)
    return MissesOut.model_validate({**_window(days, since, until), "misses": [m.as_dict() for m in found]})


@router.get(
    "/misses.csv",
    summary="The questions the bot missed, as a CSV file for a spreadsheet (editors, supervisors)",
    response_class=Response,
    responses=CSV,
)
async def misses_csv(_: EditorAgent, bot: BotDep, days: Days = 30, limit: MissLimit = 1000) -> Response:
    since, until, found = await _missed(bot, days, limit)
    return _download("misses", days, since, until, csv_bytes(MISS_COLUMNS, (m.row() for m in found)))


@router.get(
    "/answers",
    response_model=AnswersOut,
    summary="How each KB entry's answers landed over the last `days` days, worst first (editors, supervisors)",
    responses=errors(503),
)
async def answers(_: EditorAgent, bot: BotDep, days: Days = 30) -> AnswersOut:
    since, until, found = await _answered(bot, days)
    return AnswersOut.model_validate({**_window(days, since, until), "answers": [e.as_dict() for e in found]})


@router.get(
    "/answers.csv",
    summary="How each KB entry's answers landed, as a CSV file for a spreadsheet (editors, supervisors)",
    response_class=Response,
    responses={**CSV, **errors(503)},
)
async def answers_csv(_: EditorAgent, bot: BotDep, days: Days = 30) -> Response:
    since, until, found = await _answered(bot, days)
    rows = (entry.row() for entry in found)
    return _download("answers", days, since, until, csv_bytes(ANSWER_COLUMNS, rows))


@router.post(
    "/kb/entries/{entry_id}/questions",
    status_code=201,
    response_model=QuestionAddedOut,
    summary="Add a customer's question to a KB entry (editors, supervisors)",
    responses={
        202: {"model": QuestionAddedOut, "description": _NOT_APPLIED},
        **errors(
            404,
            409,
            422,
            500,
            described={
                404: "No KB entry with this id",
                409: "Already a question of the entry, or the file changed meanwhile",
                422: "The question or the edited file was refused (invalid_content), or the request failed validation",
                500: "The edit failed unexpectedly (edit_failed); nothing was written",
            },
        ),
    },
)
async def add_question(
    entry_id: str, body: QuestionIn, agent: EditorAgent, bot: BotDep, response: Response
) -> QuestionAddedOut:
    settings = bot.settings
    language = body.language or _language_of(body.text, settings.kb.languages, settings.kb.default_language)
    done = await _edit(lambda: content_edit.add_question(settings, entry_id, language, body.text))
    file = await _record(bot, QUESTION_ADDED, agent, done, entry=entry_id, language=language)
    applied, status = await _apply(bot, response)
    return QuestionAddedOut(
        entry=entry_id,
        language=language,
        text=done.text,
        file=file,
        line=done.line,
        applied=applied,
        status=status,
    )


@router.post(
    "/intents/oos/examples",
    status_code=201,
    response_model=ExampleAddedOut,
    summary="Add a customer's question to the out-of-scope examples (editors, supervisors)",
    responses={
        202: {"model": ExampleAddedOut, "description": _NOT_APPLIED},
        **errors(
            409,
            422,
            500,
            described={
                409: "Already an example, or the file changed meanwhile",
                422: "The example or the edited file was refused (invalid_content), or the request failed validation",
                500: "The edit failed unexpectedly (edit_failed); nothing was written",
            },
        ),
    },
)
async def add_out_of_scope(
    body: ExampleIn, agent: EditorAgent, bot: BotDep, response: Response
) -> ExampleAddedOut:
    done = await _edit(lambda: content_edit.add_out_of_scope_example(bot.settings, body.text))
    file = await _record(bot, EXAMPLE_ADDED, agent, done)
    applied, status = await _apply(bot, response)
    return ExampleAddedOut(
        intent="oos", text=done.text, file=file, line=done.line, applied=applied, status=status
    )


async def _apply(bot: SupportBot, response: Response) -> tuple[bool, str]:
    """Reload the content so the edit is in service; 202 (not 201) when it is not, with why."""
    applied, status = await bot.content.apply(bot.settings.kb.apply_wait_seconds)
    if not applied:
        response.status_code = 202
    return applied, status


# --- helpers ----------------------------------------------------------------------------------------


def _knowledge_base(bot: SupportBot) -> KnowledgeBase:
    try:
        return bot.matcher().kb
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc


async def _missed(bot: SupportBot, days: int, limit: int) -> tuple[datetime, datetime, list[Miss]]:
    until = utcnow()
    since = until - timedelta(days=days)
    return since, until, await collect_misses(bot.database, since, limit)


async def _answered(bot: SupportBot, days: int) -> tuple[datetime, datetime, list[EntryAnswers]]:
    language = bot.settings.kb.default_language
    titles = {entry.id: entry.title_in(language, language) for entry in _knowledge_base(bot).entries}
    until = utcnow()
    since = until - timedelta(days=days)
    return since, until, await collect_answers(bot.database, titles, since, until)


async def _edit(change: Callable[[], ContentEdit]) -> ContentEdit:
    """Make one content edit in a worker thread, its refusals as the API's errors."""

    def one_at_a_time() -> ContentEdit:
        with content_edit.EDIT_LOCK:
            return change()

    try:
        return await asyncio.to_thread(one_at_a_time)
    except UnknownEntry as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except AlreadyPresent as exc:
        raise api_error(409, "already_present", str(exc)) from exc
    except ChangedMeanwhile as exc:
        raise api_error(409, "changed_meanwhile", str(exc)) from exc
    except ContentError as exc:
        raise api_error(422, "invalid_content", "; ".join(exc.problems)) from exc
    except Exception as exc:  # a bug or the file system: a clear error, never a traceback
        log.exception("content edit failed")
        raise api_error(
            500, "edit_failed", f"the edit failed ({type(exc).__name__}: {exc}); nothing was written"
        ) from exc


async def _record(bot: SupportBot, kind: str, agent: Agent, done: ContentEdit, **data: Any) -> str:
    """Audit an addition (who, the text, which file and line); return the file as the editor knows it."""
    file = _shown(bot, done.file)
    async with bot.database.session() as session:
        audit(session, None, kind, actor(agent), agent.id, text=done.text, file=file, line=done.line, **data)
    return file


def _shown(bot: SupportBot, path: Path) -> str:
    """A content file as the editor knows it: relative to the config file's folder when inside it."""
    try:
        return str(path.resolve().relative_to(bot.settings.base_dir.resolve()))
    except ValueError:
        return str(path)


def _language_of(text: str, languages: list[str], default: str) -> str:
    detected = detect_language(text)[0]
    return detected if detected in languages else default


def _window(days: int, since: datetime, until: datetime) -> dict[str, Any]:
    return {
        "days": days,
        "since": since.isoformat(timespec="seconds"),
        "until": until.isoformat(timespec="seconds"),
    }


def _download(kind: str, days: int, since: datetime, until: datetime, content: bytes) -> Response:
    """A CSV attachment named for what it holds and its window: answers_30d_2026-11-01_2026-12-01.csv."""
    name = f"{kind}_{days}d_{since:%Y-%m-%d}_{until:%Y-%m-%d}.csv"
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
