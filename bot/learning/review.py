"""The suggestions of a running bot, and what editors do with them: accept (write the KB) or dismiss.

Suggestions are computed when asked for, from the resolved conversations of the last `learning.days`
days and the content in service, so they always reflect both. What editors did is kept in the audit
trail: `suggestion_accepted` and `suggestion_dismissed` events name the conversations the suggestion came
from, and a group whose conversations were all in one of them is not suggested again.

Accepting writes text through the content editor (bot/content/edit.py: checked as `supportbot kb check`
checks, atomic), records the audit event and reloads the content, so the bot answers with it at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.app import SupportBot
from bot.config import LearningSettings, Settings
from bot.content import edit as content_edit
from bot.content.edit import ContentEdit
from bot.errors import ContentError, SupportBotError
from bot.handoff.agents import actor
from bot.handoff.assignment import audit
from bot.learning.pairs import load_history
from bot.learning.placeholders import PLACEHOLDER, placeholders_in
from bot.learning.suggestions import ADD_QUESTIONS, Suggestion, build_suggestions
from bot.nlu.matcher import Matcher
from bot.storage.database import Database
from bot.storage.models import Agent, Event, utcnow

ACCEPTED = "suggestion_accepted"  # data: suggestion, change (its kind), entry, conversations, file, line
DISMISSED = "suggestion_dismissed"  # data: suggestion, conversations
_ONE_EDIT_AT_A_TIME = threading.Lock()


class UnknownSuggestion(SupportBotError):
    """No current suggestion has this id (it was handled, or its group changed: list them again)."""


@dataclass(frozen=True)
class Edited:
    """What an editor changed before accepting: each part replaces the suggestion's when given."""

    entry: str | None = None  # the new entry's id (new_entry)
    questions: Sequence[tuple[str, str]] | None = None  # (language, text)
    answer: dict[str, str] | None = None  # language -> text (new_entry)


async def remembered(database: Database) -> list[set[int]]:
    """The conversations of every accepted or dismissed suggestion."""
    async with database.session() as session:
        rows = await session.execute(select(Event.data).where(Event.kind.in_((ACCEPTED, DISMISSED))))
        return [{int(c) for c in data.get("conversations") or []} for data in rows.scalars()]


async def collect(
    database: Database,
    matcher: Matcher,
    learning: LearningSettings,
    days: int | None = None,
    executor: Executor | None = None,
) -> list[Suggestion]:
    """The suggestions the conversations resolved in the last `days` days give now (the model work in
    `executor` when given, else here)."""
    since = utcnow() - timedelta(days=days or learning.days)
    history = await load_history(database, since, learning.max_conversations)
    seen = await remembered(database)
    if executor is None:
        return build_suggestions(matcher, history, learning, seen)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, lambda: build_suggestions(matcher, history, learning, seen))


async def current_suggestions(bot: SupportBot, days: int | None = None) -> list[Suggestion]:
    """The running bot's suggestions, with the content in service."""
    return await collect(bot.database, bot.matcher(), bot.settings.learning, days, bot.executor)


async def find(bot: SupportBot, suggestion_id: str) -> Suggestion:
    for suggestion in await current_suggestions(bot):
        if suggestion.id == suggestion_id:
            return suggestion
    raise UnknownSuggestion(
        f"no current suggestion {suggestion_id!r}: it was accepted or dismissed, or new conversations "
        "changed its group; list the suggestions again"
    )


async def dismiss(bot: SupportBot, agent: Agent, suggestion_id: str) -> Suggestion:
    suggestion = await find(bot, suggestion_id)
    async with bot.database.session() as session:
        audit(
            session, None, DISMISSED, actor(agent), agent.id,
            suggestion=suggestion.id, conversations=suggestion.conversations,
        )  # fmt: skip
    return suggestion


@dataclass(frozen=True)
class Accepted:
    id: str
    kind: str
    entry: str
    file: str  # relative to the config file's folder when inside it
    line: int


async def accept(bot: SupportBot, agent: Agent, suggestion_id: str, edited: Edited) -> Accepted:
    """Write the suggestion (as edited) into the KB, audit it, reload the content; raise if refused."""
    suggestion = await find(bot, suggestion_id)
    settings = bot.settings

    def write() -> ContentEdit:
        with _ONE_EDIT_AT_A_TIME:
            return write_suggestion(settings, suggestion, edited, agent.login)

    done = await asyncio.to_thread(write)
    entry = suggestion.entry if suggestion.kind == ADD_QUESTIONS else done.text
    file = shown(settings, done.file)
    async with bot.database.session() as session:
        audit(
            session, None, ACCEPTED, actor(agent), agent.id,
            suggestion=suggestion.id, change=suggestion.kind, entry=entry,
            conversations=suggestion.conversations, file=file, line=done.line,
        )  # fmt: skip
    await bot.reload_content()
    return Accepted(suggestion.id, suggestion.kind, str(entry), file, done.line)


def shown(settings: Settings, path: Path) -> str:
    """A content file as the editor knows it: relative to the config file's folder when inside it."""
    try:
        return str(path.resolve().relative_to(settings.base_dir.resolve()))
    except ValueError:
        return str(path)


def questions_to_write(questions: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Questions as written into the KB: placeholders left out (the bot ignores such details anyway)."""
    out = []
    for language, text in questions:
        cleaned = " ".join(PLACEHOLDER.sub(" ", text).split()).strip(" ,")
        if cleaned:
            out.append((language, cleaned))
    return out


def write_suggestion(settings: Settings, suggestion: Suggestion, edited: Edited, login: str) -> ContentEdit:
    """Make the content edit of one suggestion: questions for an entry, or a new entry in learning.kb_file."""
    questions = questions_to_write(edited.questions if edited.questions is not None else suggestion.questions)
    if not questions:
        raise ContentError(["no question left to write: give at least one"])
    if suggestion.kind == ADD_QUESTIONS:
        assert suggestion.entry is not None
        with content_edit.EDIT_LOCK:  # one content edit at a time in this process (bot/content/edit.py)
            return content_edit.add_questions(settings, suggestion.entry, questions)
    answer = edited.answer if edited.answer is not None else suggestion.answer
    left = [
        f"answer.{lang} still holds {', '.join(found)}"
        for lang, text in answer.items()
        if (found := placeholders_in(text))
    ]
    if left:
        raise ContentError([*left, "replace the placeholders with a general wording before accepting"])
    grouped: dict[str, list[str]] = {}
    for language, text in questions:
        grouped.setdefault(language, []).append(text)
    comment = (
        f"Suggested from conversations {', '.join(map(str, suggestion.conversations))} "
        f"(suggestion {suggestion.id}); accepted by {login} on {utcnow():%Y-%m-%d}."
    )
    entry_id = edited.entry or suggestion.entry or f"suggested_{suggestion.id}"
    with content_edit.EDIT_LOCK:
        return content_edit.add_entry(settings, kb_file(settings), entry_id, grouped, answer, comment)


def kb_file(settings: Settings) -> Path:
    """The file new entries are appended to: learning.kb_file in kb.path (kb.path itself when it is a file)."""
    folder = settings.resolve(settings.kb.path)
    return folder if folder.is_file() else folder / settings.learning.kb_file
