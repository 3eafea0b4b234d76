"""The suggestions API (supervisors and admins): what agents' answers teach the KB, accepted or dismissed.

GET /api/v1/suggestions lists the current suggestions (bot/learning/suggestions.py); POST
/api/v1/suggestions/{id}/accept writes one into the KB, as suggested or as edited in the body, and the
bot answers with it at once (bot/learning/review.py); POST /api/v1/suggestions/{id}/dismiss sets it aside
until new conversations join its group. Both are audit events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from bot.content.edit import AlreadyPresent, ChangedMeanwhile, UnknownEntry
from bot.errors import ContentError
from bot.handoff.api.deps import SupervisorAgent
from bot.learning import review
from bot.learning.review import Edited, UnknownSuggestion
from bot.learning.suggestions import Suggestion
from bot.web.body import Body
from bot.web.deps import BotDep
from bot.web.errors import api_error, errors

SuggestionId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The suggestion's id")]

router = APIRouter(prefix="/api/v1", tags=["suggestions"], responses=errors(401, 403))


class SuggestedQuestionOut(Body):
    language: str
    text: str = Field(description="As customers asked it; personal data as {placeholders}")


class SuggestedEntryOut(Body):
    id: str = Field(description="Stable while the group's conversations stay the same")
    kind: str = Field(description="new_entry or add_questions")
    entry: str | None = Field(description="add_questions: the entry to add to; new_entry: the proposed id")
    title: str
    questions: list[SuggestedQuestionOut]
    answer: dict[str, str] = Field(description="Per language: the agents' most representative answer")
    conversations: list[int] = Field(description="The resolved conversations it was learned from")
    closest_entry: str | None = Field(description="The entry the bot ranks first for these questions")
    answer_similarity: float | None = Field(description="Cosine of the agents' answers to that entry's")
    missing_languages: list[str] = Field(description="kb.languages no agent answered in: give them to accept")
    placeholders: list[str] = Field(description="Personal data left out: {order_number}, {name}...")


class SuggestedEntriesOut(Body):
    days: int
    suggestions: list[SuggestedEntryOut]


class SuggestedQuestionIn(Body):
    language: str = Field(max_length=16)
    text: str = Field(min_length=1, max_length=1000)


class SuggestionEditIn(Body):
    """The suggestion as the editor wants it written; each part left out stays as suggested."""

    entry: str | None = Field(default=None, max_length=64, description="new_entry: the new entry's id")
    questions: list[SuggestedQuestionIn] | None = Field(default=None, max_length=200)
    answer: dict[str, str] | None = Field(default=None, description="new_entry: the answer per language")


class SuggestionAcceptedOut(Body):
    id: str
    kind: str
    entry: str
    file: str
    line: int


class SuggestionDismissedOut(Body):
    id: str
    conversations: list[int]


@router.get(
    "/suggestions",
    response_model=SuggestedEntriesOut,
    summary="KB entries and question wordings suggested from agents' answers (supervisors)",
    responses=errors(503),
)
async def suggestions(
    _: SupervisorAgent,
    bot: BotDep,
    days: Annotated[int | None, Query(ge=1, le=366, description="How far back (learning.days)")] = None,
) -> SuggestedEntriesOut:
    found = await _current(bot, days)
    return SuggestedEntriesOut(
        days=days or bot.settings.learning.days,
        suggestions=[SuggestedEntryOut.model_validate(s.as_dict()) for s in found],
    )


@router.post(
    "/suggestions/{suggestion_id}/accept",
    response_model=SuggestionAcceptedOut,
    summary="Write a suggestion (optionally edited) into the KB; the bot answers with it at once (supervisors)",
    responses=errors(
        404,
        409,
        422,
        503,
        described={
            404: "No current suggestion with this id",
            409: "Every question is there already, or the file changed meanwhile",
            422: "The entry was refused (invalid_content: placeholders left, a language missing...)",
        },
    ),
)
async def accept(
    suggestion_id: SuggestionId, agent: SupervisorAgent, bot: BotDep, body: SuggestionEditIn | None = None
) -> SuggestionAcceptedOut:
    edited = Edited()
    if body is not None:
        edited = Edited(
            body.entry,
            None if body.questions is None else [(q.language, q.text) for q in body.questions],
            body.answer,
        )
    try:
        done = await review.accept(bot, agent, suggestion_id, edited)
    except (UnknownSuggestion, UnknownEntry) as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except AlreadyPresent as exc:
        raise api_error(409, "already_present", str(exc)) from exc
    except ChangedMeanwhile as exc:
        raise api_error(409, "changed_meanwhile", str(exc)) from exc
    except ContentError as exc:
        raise api_error(422, "invalid_content", "; ".join(exc.problems)) from exc
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc
    return SuggestionAcceptedOut(id=done.id, kind=done.kind, entry=done.entry, file=done.file, line=done.line)


@router.post(
    "/suggestions/{suggestion_id}/dismiss",
    response_model=SuggestionDismissedOut,
    summary="Set a suggestion aside until new conversations join its group (supervisors)",
    responses=errors(404, 503, described={404: "No current suggestion with this id"}),
)
async def dismiss(suggestion_id: SuggestionId, agent: SupervisorAgent, bot: BotDep) -> SuggestionDismissedOut:
    try:
        suggestion = await review.dismiss(bot, agent, suggestion_id)
    except UnknownSuggestion as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except RuntimeError as exc:
        raise api_error(503, "not_ready", str(exc)) from exc
    return SuggestionDismissedOut(id=suggestion.id, conversations=suggestion.conversations)


async def _current(bot: BotDep, days: int | None) -> list[Suggestion]:
    try:
        return await review.current_suggestions(bot, days)
    except RuntimeError as exc:  # the model is not loaded yet
        raise api_error(503, "not_ready", str(exc)) from exc
