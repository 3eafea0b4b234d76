"""The bodies of the knowledge workspace's API (/api/v1/kb): what editors send and what they get back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bot.web.body import Body
from bot.web.errors import ErrorDetail, InvalidRequest

ENTRY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_ANSWER = 4000
Questions = dict[str, list[str]]


class EntryUpdate(BaseModel):
    """An entry as the editor sets it (PUT replaces all of it; the form sends back what GET gave)."""

    title: str = Field(
        default="", max_length=200, description="The editors' name for it; customers never see it"
    )
    tags: list[str] = Field(default=[], max_length=20)
    questions: Questions = Field(description="{language: [how customers ask, ...]}")
    answer: dict[str, str] = Field(description="{language: the answer}, multi-line allowed")
    handoff: bool = Field(default=False, description="Hand the conversation to a person after answering")
    action: str | None = Field(
        default=None, max_length=100, description="A custom action that answers instead"
    )


class EntryIn(EntryUpdate):
    id: str = Field(pattern=ENTRY_ID, description="A short name such as delivery_time")
    file: str | None = Field(
        default=None,
        max_length=200,
        description="A KB file's name (default: where its first tag's entries are)",
    )


class DraftIn(EntryUpdate):
    id: str = Field(pattern=ENTRY_ID, description="The entry being edited (or a new one)")


class TryIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000, description="What a customer might write")
    language: str | None = Field(default=None, max_length=16, description="Default: detected from the text")
    draft: DraftIn | None = Field(
        default=None, description="An unsaved entry to try instead of the saved one"
    )


class RevertIn(BaseModel):
    event_id: int = Field(ge=1, description="A change from the entry's history")
    to: Literal["before", "after"] = Field(
        default="before", description="The entry as it was before that change (undo it), or after it"
    )


class EntryOut(Body):
    id: str
    title: str = Field(description="The editors' title, else the first question in the default language")
    own_title: str = Field(description="The `title:` in the file (empty: none)")
    tags: list[str]
    file: str
    line: int
    etag: str = Field(description="The entry's version: send it back in If-Match to save or delete")
    questions: Questions
    answer: dict[str, str]
    handoff: bool
    action: str | None
    question_counts: dict[str, int]
    answer_languages: list[str]
    missing_questions: list[str] = Field(description="kb.languages without questions")
    missing_answers: list[str] = Field(description="kb.languages without an answer")
    text: str = Field(description="The entry's YAML as it is in its file")
    score: float | None = Field(description="How close it is to the meaning searched for (search by meaning)")


class EntriesOut(Body):
    entries: list[EntryOut]
    languages: list[str]
    files: list[str]
    tags: list[str]


class ChangeOut(Body):
    event_id: int
    entry: EntryOut | None = Field(description="The entry now (null: deleted)")
    file: str
    line: int


class EntryChangeEventOut(Body):
    id: int
    kind: str = Field(description="kb_entry_created / kb_entry_saved / kb_entry_deleted / kb_entry_reverted")
    by: str
    at: str
    file: str
    line: int
    before: str | None
    after: str | None
    reverted: int | None = Field(description="For a revert: the change it went back over")


class EntryHistoryOut(Body):
    entry: str
    current_etag: str | None
    events: list[EntryChangeEventOut]


class CandidateOut(Body):
    label: str
    kind: str = Field(description="kb (an entry) or intent")
    score: float
    similarity: float
    matched: str = Field(description="The question or example it matched best")
    language: str | None


class TryOut(Body):
    decision: str = Field(description="answer / clarify / fallback / handoff")
    kind: str
    reason: str
    entry: str | None
    title: str | None
    answer: str | None = Field(description="What the bot would say from the entry, in `language`")
    options: list[str]
    score: float
    candidates: list[CandidateOut]
    language: str
    draft: bool
    warnings: list[str] = Field(description="kb check's confusion warning for the draft, if any")


class ProblemOut(Body):
    file: str | None
    line: int | None
    field: str | None = Field(description="questions.en, answer.pl, ... when the problem names one")
    message: str


class RefusedDetail(ErrorDetail):
    problems: list[ProblemOut]


class ContentRefused(BaseModel):
    """422: the edited file would not pass `kb check`; nothing was written."""

    detail: RefusedDetail


class StaleDetail(ErrorDetail):
    current: EntryOut | None = Field(description="The entry as it is now (null: deleted meanwhile)")


class StaleVersion(BaseModel):
    """412: the entry changed since the editor loaded it; both versions to compare."""

    detail: StaleDetail


REFUSED_OR_INVALID = ContentRefused | InvalidRequest
