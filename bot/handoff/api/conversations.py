"""The conversations: the lists, one in full with its history, and the agents' moves on it.

Agents see the queue, what they hold and what they once held; supervisors see and move everything.
A move answers with the conversation as it then is (or, for a message or a note, what was written).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from bot.handoff.agents import has_role
from bot.handoff.api.deps import (
    ConversationId,
    DatabaseDep,
    DeskAgent,
    MovesDep,
    VisibleConversation,
    visible_conversation,
)
from bot.handoff.api.refusals import refusals
from bot.handoff.api.schemas import (
    AssignmentOut,
    ConversationDetailOut,
    ConversationOut,
    EventOut,
    HistoryOut,
    MessageOut,
    NewNoteOut,
)
from bot.handoff.context import context_card
from bot.handoff.moves import TemplateFailed
from bot.storage import agent_view, event_log
from bot.storage.database import Database
from bot.storage.models import MAX_ID
from bot.storage.repositories import ConversationRepository
from bot.web.errors import api_error, errors

router = APIRouter()


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096, description="Plain text; not blank")


class TransferIn(BaseModel):
    agent_login: str | None = Field(default=None, description="Pass the conversation to this online agent")
    queue: bool = Field(default=False, description="Or put it back in the queue (keeping its place)")
    reason: str | None = Field(default=None, max_length=500)


class ResolveIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


# --- reading ---------------------------------------------------------------------------------------


@router.get(
    "/conversations",
    response_model=list[ConversationOut],
    summary="Conversations: the queue, mine, or (supervisors) all",
)
async def conversations(
    agent: DeskAgent,
    database: DatabaseDep,
    state: Annotated[Literal["waiting", "with_agent", "resolved"] | None, Query()] = None,
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[ConversationOut]:
    supervisor = has_role(agent, "supervisor")
    async with database.session() as session:
        found = await agent_view.list_conversations(session, agent.id, supervisor, state, mine, limit, offset)
        rows = await agent_view.with_people(session, found)
    return [ConversationOut.of(row) for row in rows]


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetailOut,
    summary="One conversation with messages and context card",
    responses=errors(403, 404),
)
async def conversation(found: VisibleConversation, database: DatabaseDep) -> ConversationDetailOut:
    async with database.session() as session:
        [row] = await agent_view.with_people(session, [found])
        messages = await agent_view.messages(session, found.id)
        logins = await agent_view.logins(session, (m.agent_id for m in messages if m.agent_id))
        notes = await event_log.notes(session, found.id)
        card = await context_card(session, found)
        held = await agent_view.assignment_history(session, found.id)
    return ConversationDetailOut.full(row, messages, logins, notes, card, held)


@router.get(
    "/conversations/{conversation_id}/history",
    response_model=HistoryOut,
    summary="Who had this conversation, and every move",
    responses=errors(403, 404),
)
async def history(found: VisibleConversation, database: DatabaseDep) -> HistoryOut:
    async with database.session() as session:
        held = await agent_view.assignment_history(session, found.id)
        events = await ConversationRepository(session).events(found.id)
    return HistoryOut(
        assignments=[AssignmentOut.of(assignment, agent) for assignment, agent in held],
        events=[EventOut.of(event) for event in events],
    )


# --- moves -----------------------------------------------------------------------------------------


@router.post(
    "/conversations/{conversation_id}/accept",
    response_model=ConversationOut,
    summary="Take a waiting conversation",
    responses=errors(403, 404, 409),
)
async def accept(
    conversation_id: ConversationId, agent: DeskAgent, moves: MovesDep, database: DatabaseDep
) -> ConversationOut:
    with refusals():
        await moves.accept(conversation_id, agent.id)
    return await _as_it_is(database, conversation_id)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=MessageOut,
    summary="Reply to the customer",
    responses=errors(403, 404, 409, 422),
)
async def reply(
    conversation_id: ConversationId, body: TextIn, agent: DeskAgent, moves: MovesDep
) -> MessageOut:
    with refusals():
        row = await moves.reply(conversation_id, agent.id, _not_blank(body.text))
    return MessageOut.of(row, {agent.id: agent.login})


@router.post(
    "/conversations/{conversation_id}/template",
    status_code=201,
    response_model=MessageOut,
    summary="Send the re-engagement template (outside WhatsApp's 24-hour window)",
    responses=errors(403, 404, 409, 502),
)
async def template(conversation_id: ConversationId, agent: DeskAgent, moves: MovesDep) -> MessageOut:
    with refusals():
        try:
            row = await moves.send_template(conversation_id, agent.id)
        except TemplateFailed as exc:
            raise api_error(502, "template_failed", str(exc)) from exc
    return MessageOut.of(row, {agent.id: agent.login})


@router.post(
    "/conversations/{conversation_id}/notes",
    status_code=201,
    response_model=NewNoteOut,
    summary="Internal note (not sent)",
    responses=errors(403, 404, 422),
)
async def note(
    conversation_id: ConversationId, body: TextIn, agent: DeskAgent, moves: MovesDep, database: DatabaseDep
) -> NewNoteOut:
    await visible_conversation(database, agent, conversation_id, moves.desk.config, write=True)
    with refusals():
        note_id = await moves.note(conversation_id, agent.id, _not_blank(body.text))
    return NewNoteOut(id=note_id, author=agent.login, text=body.text)


@router.post(
    "/conversations/{conversation_id}/transfer",
    response_model=ConversationOut,
    summary="To a named agent or back to the queue",
    responses=errors(403, 404, 409, 422),
)
async def transfer(
    conversation_id: ConversationId,
    body: TransferIn,
    agent: DeskAgent,
    moves: MovesDep,
    database: DatabaseDep,
) -> ConversationOut:
    if bool(body.agent_login) == bool(body.queue):
        raise api_error(422, "invalid_transfer", 'give either "agent_login" or "queue": true')
    with refusals():
        await moves.transfer(conversation_id, agent.id, body.agent_login, body.queue, body.reason)
    return await _as_it_is(database, conversation_id)


@router.post(
    "/conversations/{conversation_id}/resolve",
    response_model=ConversationOut,
    summary="Close the conversation",
    responses=errors(403, 404, 409),
)
async def resolve(
    conversation_id: ConversationId,
    body: ResolveIn,
    agent: DeskAgent,
    moves: MovesDep,
    database: DatabaseDep,
) -> ConversationOut:
    with refusals():
        await moves.resolve(conversation_id, agent.id, body.reason)
    return await _as_it_is(database, conversation_id)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise api_error(422, "blank_text", "the text is empty")
    return text


async def _as_it_is(database: Database, conversation_id: int) -> ConversationOut:
    """The conversation after a move, as the lists show it."""
    async with database.session() as session:
        conversation = await ConversationRepository(session).get(conversation_id)
        assert conversation is not None
        [row] = await agent_view.with_people(session, [conversation])
    return ConversationOut.of(row)
