"""The FAQ knowledge base: kb/*.yaml entries with questions and answers per language."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.content.yamlfile import content_files, line_of, load_yaml
from bot.errors import ContentError


@dataclass(frozen=True)
class KBEntry:
    """One FAQ entry: how customers ask, and what the bot answers, per language."""

    id: str
    questions: dict[str, list[str]]
    answer: dict[str, str]
    tags: tuple[str, ...] = ()
    handoff: bool = False
    source: str = ""  # file:line, for error messages
    action: str | None = None  # a custom action that answers instead (bot/actions); `answer` is its fallback
    title: str = ""  # the editors' name for it (the knowledge workspace); customers never see it

    def answer_in(self, language: str, fallback: str) -> str:
        """Return the answer in `language`, else in `fallback`, else any language."""
        if self.answer.get(language):
            return self.answer[language]
        if self.answer.get(fallback):
            return self.answer[fallback]
        return next(iter(self.answer.values()), "")

    def title_in(self, language: str, fallback: str) -> str:
        """Return the first question in `language` (used on clarification buttons)."""
        for lang in (language, fallback, *self.questions):
            if self.questions.get(lang):
                return self.questions[lang][0]
        return self.id


@dataclass
class KnowledgeBase:
    """All entries, in file order, plus the problems found while loading."""

    entries: list[KBEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def get(self, entry_id: str) -> KBEntry | None:
        """The entry with this id, in constant time.

        `entries` is a plain list that callers may change, so a position found in the index is checked
        against the list, and the index is rebuilt when it no longer matches.
        """
        position = self._positions.get(entry_id)
        if position is None or position >= len(self.entries) or self.entries[position].id != entry_id:
            self._positions = {entry.id: i for i, entry in enumerate(self.entries)}
            position = self._positions.get(entry_id)
        return None if position is None else self.entries[position]

    def top_topics(self, limit: int = 6) -> list[KBEntry]:
        """Return the first entry of each tag (file order), for a start menu."""
        seen: set[str] = set()
        topics = []
        for entry in self.entries:
            tag = entry.tags[0] if entry.tags else entry.id
            if tag not in seen:
                seen.add(tag)
                topics.append(entry)
        return topics[:limit]

    def fingerprint(self) -> str:
        """Return a hash of everything that matters for the search index."""
        digest = hashlib.sha256()
        for entry in self.entries:
            digest.update(entry.id.encode())
            for lang in sorted(entry.questions):
                for question in entry.questions[lang]:
                    digest.update(f"\0{lang}\0{question}".encode())
        return digest.hexdigest()


def _text_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _parse_entry(
    raw: Any, where: str, languages: list[str], problems: list[str], warnings: list[str]
) -> KBEntry | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: an entry must be a mapping with id, questions and answer")
        return None
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not entry_id.strip():
        problems.append(f"{where}: entry has no `id` (a short name such as delivery_time)")
        return None
    unknown = set(raw) - {"id", "title", "tags", "questions", "answer", "handoff", "action"}
    if unknown:
        problems.append(f"{where}: entry {entry_id!r} has unknown keys: {', '.join(sorted(unknown))}")
    questions_raw = raw.get("questions")
    answer_raw = raw.get("answer")
    action = raw.get("action")
    if action is not None and (not isinstance(action, str) or not action.strip()):
        problems.append(f"{where}: entry {entry_id!r}: action must be the name of a custom action")
        action = None
    if action and answer_raw is None:
        answer_raw = {}  # an entry answered by an action alone: no fallback text
    questions: dict[str, list[str]] = {}
    answer: dict[str, str] = {}
    if isinstance(answer_raw, str):
        answer_raw = {languages[0] if languages else "en": answer_raw}
    if not isinstance(questions_raw, dict) or not questions_raw:
        problems.append(f"{where}: entry {entry_id!r} needs `questions:` with a list per language")
    else:
        for lang, items in questions_raw.items():
            texts = _text_list(items)
            if texts is None:
                problems.append(f"{where}: entry {entry_id!r}: questions.{lang} must be a list of strings")
                continue
            cleaned = [t.strip() for t in texts if t.strip()]
            if not cleaned:
                problems.append(f"{where}: entry {entry_id!r}: questions.{lang} is empty")
            questions[str(lang)] = cleaned
    if not isinstance(answer_raw, dict) or (not answer_raw and not action):
        problems.append(f"{where}: entry {entry_id!r} needs `answer:` with a text per language")
    else:
        for lang, text in answer_raw.items():
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{where}: entry {entry_id!r}: answer.{lang} is empty")
                continue
            answer[str(lang)] = text.strip()
    for lang in languages:
        if lang not in questions:
            warnings.append(f"{where}: entry {entry_id!r} has no questions in {lang!r} (kb.languages)")
        if lang not in answer and (answer or not action):
            problems.append(f"{where}: entry {entry_id!r} has no answer in {lang!r} (kb.languages)")
    handoff = raw.get("handoff", False)
    if not isinstance(handoff, bool):
        problems.append(f"{where}: entry {entry_id!r}: handoff must be true or false")
        handoff = False
    title = raw.get("title") or ""
    if not isinstance(title, str):
        problems.append(f"{where}: entry {entry_id!r}: title must be a text")
        title = ""
    tags = raw.get("tags") or []
    if not isinstance(tags, list):
        problems.append(f"{where}: entry {entry_id!r}: tags must be a list")
        tags = []
    return KBEntry(
        id=entry_id.strip(),
        questions=questions,
        answer=answer,
        tags=tuple(str(t) for t in tags),
        handoff=handoff,
        source=where,
        action=action.strip() if action else None,
        title=title.strip(),
    )


def load_knowledge_base(folder: Path, languages: list[str]) -> KnowledgeBase:
    """Load every kb/*.yaml file; collect problems instead of stopping at the first."""
    kb = KnowledgeBase()
    seen: dict[str, str] = {}
    try:
        files = content_files(folder)
    except ContentError as exc:
        kb.problems.extend(exc.problems)
        return kb
    for path in files:
        try:
            document = load_yaml(path)
        except ContentError as exc:
            kb.problems.extend(exc.problems)
            continue
        if document is None:
            continue
        if not isinstance(document, list):
            kb.problems.append(f"{path}:1: the file must be a list of entries (each starting with `- id:`)")
            continue
        for raw in document:
            where = f"{path}:{line_of(raw)}"
            entry = _parse_entry(raw, where, languages, kb.problems, kb.warnings)
            if entry is None:
                continue
            if entry.id in seen:
                kb.problems.append(f"{where}: duplicate id {entry.id!r} (first defined at {seen[entry.id]})")
                continue
            seen[entry.id] = where
            kb.entries.append(entry)
    if not kb.entries and not kb.problems:
        kb.problems.append(f"{folder}: no knowledge-base entries found")
    return kb
