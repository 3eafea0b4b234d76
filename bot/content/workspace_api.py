"""The knowledge workspace's API under /api/v1/kb, for content editors, supervisors and admins.

GET /entries lists every entry with its version (`etag`); GET /entries/{id} gives one with an ETag header.
PUT and DELETE need If-Match with that version: a stale one answers 412 with the entry as it is now (an
editor's save meanwhile, or its file changed on disk); a file changed while the edit was checked answers
409. A change that would fail `supportbot kb check` answers 422 with each problem's file, line and field,
and the file is left as it was. Every change is an audit event with the entry's text before and after
(GET /entries/{id}/history); POST /entries/{id}/revert puts back that exact text. POST /try says what the
bot would do with a message, with the saved KB or with an unsaved draft of an entry. The running service
reloads its content right after each change (bot/app.py, SupportBot.content_changed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, HTTPException, Query, Response

from bot.app import SupportBot
from bot.content import changes, trial, workspace
from bot.content.edit import ChangedMeanwhile, UnknownEntry
from bot.content.entries import EntryFields
from bot.content.workspace import Change, EntryExists, Stale, StoredEntry
from bot.content.workspace_schemas import (
    REFUSED_OR_INVALID,
    CandidateOut,
    ChangeOut,
    EntriesOut,
    EntryChangeEventOut,
    EntryHistoryOut,
    EntryIn,
    EntryOut,
    EntryUpdate,
    ProblemOut,
    RevertIn,
    StaleVersion,
    TryIn,
    TryOut,
)
from bot.errors import ContentError
from bot.handoff.agents import actor, iso
from bot.handoff.api.deps import EditorAgent
from bot.storage.models import Agent
from bot.web.deps import BotDep
from bot.web.errors import ApiError, api_error, errors

T = TypeVar("T")
IfMatch = Annotated[str | None, Header(description="The entry's etag, as GET gave it (or *)")]
_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::\d+)?: (?P<message>.*)$", re.DOTALL)
_FIELD = re.compile(
    r"\b(questions|answer)\.(\w+)|no (answer|questions) in '(\w+)'|\(([a-z]{2,3})\) is also under"
)

STALE: dict[int | str, dict[str, Any]] = {
    412: {"model": StaleVersion, "description": "The entry changed since you loaded it: both versions"},
}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": REFUSED_OR_INVALID,
        "description": "Refused by `kb check` (nothing written), or invalid request",
    },
}
MISSING_VERSION: dict[int | str, dict[str, Any]] = {
    428: {"model": ApiError, "description": "If-Match is required: the etag GET gave (or *)"}
}
ETAG = {"ETag": {"description": "The entry's version, for If-Match", "schema": {"type": "string"}}}

router = APIRouter(prefix="/api/v1/kb", tags=["knowledge"], responses=errors(401, 403))


@router.get(
    "/entries",
    response_model=EntriesOut,
    summary="Every KB entry with its version, searched by text or meaning, by tag (editors)",
    responses=errors(503, described={503: "Search by meaning needs the model, not loaded yet"}),
)
async def list_entries(
    _: EditorAgent,
    bot: BotDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the id, title, questions or answers")
    ] = None,
    meaning: Annotated[
        str | None, Query(max_length=500, description="Entries closest in meaning, best first")
    ] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
) -> EntriesOut:
    stored = every = await _blocking(bot, lambda: workspace.read_entries(bot.settings))
    scores: dict[str, float] | None = None
    if meaning and meaning.strip():
        scores = await _closest(bot, meaning)
        found = scores
        stored = sorted((s for s in stored if s.entry.id in found), key=lambda s: -found[s.entry.id])
    if q and q.strip():
        stored = [s for s in stored if _mentions(s, q)]
    if tag:
        stored = [s for s in stored if tag in s.entry.tags]
    files = await _blocking(bot, lambda: workspace.kb_files(bot.settings))
    return EntriesOut(
        entries=[_entry_out(bot, s, scores) for s in stored],
        languages=list(bot.settings.kb.languages),
        files=[path.name for path in files],
        tags=sorted({tag for s in every for tag in s.entry.tags}),
    )


@router.get(
    "/entries/{entry_id}",
    response_model=EntryOut,
    summary="One KB entry, its version in the ETag header (editors)",
    responses={200: {"headers": ETAG}, **errors(404)},
)
async def get_entry(entry_id: str, _: EditorAgent, bot: BotDep, response: Response) -> EntryOut:
    stored = await _blocking(bot, lambda: workspace.get_entry(bot.settings, entry_id))
    if stored is None:
        raise api_error(404, "not_found", f"no knowledge-base entry {entry_id!r}")
    response.headers["ETag"] = f'"{stored.version}"'
    return _entry_out(bot, stored)


@router.post(
    "/entries",
    status_code=201,
    response_model=ChangeOut,
    summary="Add an entry to a KB file (editors)",
    responses={201: {"headers": ETAG}, **errors(409), **REFUSED},
)
async def create_entry(body: EntryIn, agent: EditorAgent, bot: BotDep, response: Response) -> ChangeOut:
    fields = _fields(body.id, body)
    done = await _blocking(bot, lambda: workspace.create_entry(bot.settings, fields, body.file))
    return await _changed(bot, agent, changes.CREATED, done, response)


@router.put(
    "/entries/{entry_id}",
    response_model=ChangeOut,
    summary="Save an entry: If-Match its version (editors)",
    responses={200: {"headers": ETAG}, **errors(404, 409), **STALE, **REFUSED, **MISSING_VERSION},
)
async def save_entry(
    entry_id: str,
    body: EntryUpdate,
    agent: EditorAgent,
    bot: BotDep,
    response: Response,
    if_match: IfMatch = None,
) -> ChangeOut:
    version = version_in(if_match)
    done = await _blocking(bot, lambda: workspace.save_entry(bot.settings, _fields(entry_id, body), version))
    return await _changed(bot, agent, changes.SAVED, done, response)


@router.delete(
    "/entries/{entry_id}",
    response_model=ChangeOut,
    summary="Delete an entry: If-Match its version (editors)",
    responses={**errors(404, 409), **STALE, **REFUSED, **MISSING_VERSION},
)
async def delete_entry(
    entry_id: str, agent: EditorAgent, bot: BotDep, response: Response, if_match: IfMatch = None
) -> ChangeOut:
    version = version_in(if_match)
    done = await _blocking(bot, lambda: workspace.delete_entry(bot.settings, entry_id, version))
    return await _changed(bot, agent, changes.DELETED, done, response)


@router.get(
    "/entries/{entry_id}/history",
    response_model=EntryHistoryOut,
    summary="Every change of an entry in the workspace, newest first, with its text before and after (editors)",
)
async def entry_history(entry_id: str, _: EditorAgent, bot: BotDep) -> EntryHistoryOut:
    events = await changes.history(bot.database, entry_id)
    stored = await _blocking(bot, lambda: workspace.get_entry(bot.settings, entry_id))
    return EntryHistoryOut(
        entry=entry_id,
        current_etag=stored.version if stored else None,
        events=[
            EntryChangeEventOut(
                id=event.id,
                kind=event.kind,
                by=event.actor,
                at=iso(event.created_at) or "",
                file=str(event.data.get("file", "")),
                line=int(event.data.get("line", 0)),
                before=event.data.get("before"),
                after=event.data.get("after"),
                reverted=event.data.get("reverted"),
            )
            for event in events
        ],
    )


@router.post(
    "/entries/{entry_id}/revert",
    response_model=ChangeOut,
    summary="Put back the entry's exact text from before (or after) one change of its history (editors)",
    responses={200: {"headers": ETAG}, **errors(404, 409), **STALE, **REFUSED},
)
async def revert_entry(
    entry_id: str,
    body: RevertIn,
    agent: EditorAgent,
    bot: BotDep,
    response: Response,
    if_match: IfMatch = None,
) -> ChangeOut:
    event = await changes.change(bot.database, body.event_id)
    if event is None or event.data.get("entry") != entry_id:
        raise api_error(404, "not_found", f"no change {body.event_id} in the history of {entry_id!r}")
    text = event.data.get(body.to)
    file = bot.settings.resolve(Path(str(event.data.get("file", ""))))
    version = None if if_match is None else version_in(if_match)
    done = await _blocking(bot, lambda: workspace.restore_text(bot.settings, entry_id, text, file, version))
    return await _changed(bot, agent, changes.REVERTED, done, response, reverted=event.id)


@router.post(
    "/try",
    response_model=TryOut,
    summary="What the bot would do with a message: with the KB as it is, or with an unsaved draft (editors)",
    responses=errors(503),
)
async def try_message(body: TryIn, _: EditorAgent, bot: BotDep) -> TryOut:
    await bot.reloaded()  # a save just made is what is tried
    try:
        matcher = bot.matcher()
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc
    draft = _fields(body.draft.id, body.draft) if body.draft else None
    loop = asyncio.get_running_loop()

    def run() -> trial.Trial:
        used = trial.with_draft(matcher, draft) if draft else matcher
        return trial.try_message(used, body.text, body.language, draft.id if draft else None)

    found = await loop.run_in_executor(bot.executor, run)
    decision, default = found.decision, bot.settings.kb.default_language
    return TryOut(
        decision=decision.public_kind,
        kind=decision.kind,
        reason=decision.reason,
        entry=found.entry.id if found.entry else None,
        title=(found.entry.title or found.entry.title_in(found.language, default)) if found.entry else None,
        answer=found.entry.answer_in(found.language, default) if found.entry else None,
        options=list(decision.options),
        score=round(float(decision.score), 4),
        candidates=[
            CandidateOut(
                label=c.label,
                kind=c.kind,
                score=round(float(c.score), 4),
                similarity=round(float(c.similarity), 4),
                matched=c.matched,
                language=c.lang,
            )
            for c in decision.candidates[:5]
        ],
        language=found.language,
        draft=draft is not None,
        warnings=found.warnings,
    )


# --- helpers ------------------------------------------------------------------------------------------------


async def _blocking(bot: SupportBot, work: Callable[[], T]) -> T:
    """Run file work in a worker thread, its refusals as the API's errors."""
    try:
        return await asyncio.to_thread(work)
    except UnknownEntry as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except EntryExists as exc:
        raise api_error(409, "already_exists", str(exc)) from exc
    except ChangedMeanwhile as exc:
        raise api_error(409, "changed_meanwhile", str(exc)) from exc
    except Stale as exc:
        current = None if exc.current is None else _entry_out(bot, exc.current).model_dump()
        raise HTTPException(412, detail={"code": "stale", "message": str(exc), "current": current}) from exc
    except ContentError as exc:
        raise refused(exc) from exc


def refused(exc: ContentError) -> HTTPException:
    """422 with each of `kb check`'s problems: file, line, field, message."""
    problems = [_problem(p).model_dump() for p in exc.problems]
    detail = {"code": "invalid_content", "message": "; ".join(exc.problems), "problems": problems}
    return HTTPException(422, detail=detail)


async def _changed(
    bot: SupportBot, agent: Agent, kind: str, done: Change, response: Response, **data: Any
) -> ChangeOut:
    """Audit a change, reload the running service's content, answer with the entry now."""
    file = _shown(bot, done.file)
    event_id = await changes.record(
        bot.database,
        kind,
        actor(agent),
        agent.id,
        done.entry_id,
        file,
        done.line,
        done.before,
        done.after,
        **data,
    )
    bot.content_changed()
    stored = None
    if done.after is not None:
        stored = await _blocking(bot, lambda: workspace.get_entry(bot.settings, done.entry_id))
    if stored is not None:
        response.headers["ETag"] = f'"{stored.version}"'
    return ChangeOut(
        event_id=event_id, entry=_entry_out(bot, stored) if stored else None, file=file, line=done.line
    )


def _entry_out(bot: SupportBot, stored: StoredEntry, scores: dict[str, float] | None = None) -> EntryOut:
    entry, languages = stored.entry, bot.settings.kb.languages
    default = bot.settings.kb.default_language
    return EntryOut(
        id=entry.id,
        title=entry.title or entry.title_in(default, default),
        own_title=entry.title,
        tags=list(entry.tags),
        file=_shown(bot, stored.file),
        line=stored.text.line,
        etag=stored.version,
        questions={lang: list(texts) for lang, texts in entry.questions.items()},
        answer=dict(entry.answer),
        handoff=entry.handoff,
        action=entry.action,
        question_counts={lang: len(texts) for lang, texts in entry.questions.items()},
        answer_languages=list(entry.answer),
        missing_questions=[lang for lang in languages if not entry.questions.get(lang)],
        missing_answers=[lang for lang in languages if not entry.answer.get(lang)],
        text=stored.text.text,
        score=None if scores is None else round(scores.get(entry.id, 0.0), 4),
    )


def _fields(entry_id: str, body: EntryUpdate) -> EntryFields:
    return EntryFields(
        id=entry_id,
        title=body.title,
        tags=tuple(body.tags),
        questions={lang: list(texts) for lang, texts in body.questions.items()},
        answer=dict(body.answer),
        handoff=body.handoff,
        action=body.action,
    )


def version_in(if_match: str | None) -> str | None:
    """The version an If-Match names (None for *); 428 without one."""
    if if_match is None or not if_match.strip():
        raise api_error(428, "precondition_required", "send If-Match with the entry's etag (from GET)")
    value = if_match.strip()
    if value == "*":
        return None
    return value.removeprefix("W/").strip('"')


def _problem(problem: str) -> ProblemOut:
    found = _PROBLEM.match(problem)
    if found is None:
        return ProblemOut(file=None, line=None, field=_field(problem), message=problem)
    return ProblemOut(
        file=Path(found["file"]).name,
        line=int(found["line"]),
        field=_field(problem),
        message=found["message"],
    )


def _field(message: str) -> str | None:
    found = _FIELD.search(message)
    if found is None:
        return None
    if found.group(1):
        return f"{found.group(1)}.{found.group(2)}"
    if found.group(3):
        return f"{'answer' if found.group(3) == 'answer' else 'questions'}.{found.group(4)}"
    return f"questions.{found.group(5)}"


def _mentions(stored: StoredEntry, text: str) -> bool:
    needle = text.casefold().strip()
    entry = stored.entry
    haystack = [entry.id, entry.title, *entry.tags, *entry.answer.values()]
    haystack += [q for texts in entry.questions.values() for q in texts]
    return any(needle in item.casefold() for item in haystack)


async def _closest(bot: SupportBot, text: str) -> dict[str, float]:
    """The entries the model finds closest to `text`: entry id -> score (503 without the model)."""
    await bot.reloaded()
    try:
        matcher = bot.matcher()
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc
    loop = asyncio.get_running_loop()
    candidates = await loop.run_in_executor(bot.executor, matcher.candidates, text)
    scores: dict[str, float] = {}
    for candidate in candidates:
        if candidate.kind == "kb" and candidate.label not in scores:
            scores[candidate.label] = float(candidate.score)
    return scores


def _shown(bot: SupportBot, path: Path) -> str:
    """A content file as the editor knows it: relative to the config file's folder when inside it."""
    try:
        return str(path.resolve().relative_to(bot.settings.base_dir.resolve()))
    except ValueError:
        return str(path)
