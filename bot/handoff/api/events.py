"""The agents' live events (server-sent events): assignments, customer messages, queue changes, SLA.

An agent's stream carries the events that concern them and the queue's (every agent sees the queue move);
a supervisor's carries everything. No secret ever goes in a URL: the stream takes the token in the
header, or a single-use ticket (POST /api/v1/events/ticket) where a header cannot be sent; `?token=` is
refused. A stream ends with the log-in session it was opened under (log-out, password change,
deactivation, expiry).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handoff.agents import AgentRepository, has_role
from bot.handoff.api.deps import Credentials, DeskDep, authenticate
from bot.handoff.api.schemas import EventOut
from bot.storage import agent_view, event_log
from bot.storage.database import Database
from bot.storage.models import MAX_ID, Agent, Event, row_id
from bot.web import sse
from bot.web.errors import api_error, errors

# Events every agent's stream carries (the queue as a whole); the rest go to the agent concerned.
QUEUE_EVENTS = ("queued", "left_queue", "returned_to_queue", "assigned", "resolved")
PRIVATE_TEXT = frozenset(
    {"reason", "text", "note"}
)  # free text in event data, for who may open the conversation
POLL_SECONDS = 1.0  # other processes' events are picked up from the table at least this often
SETTLE_SECONDS = 30.0  # a transaction older than this has committed (or never will)

router = APIRouter()


@router.get(
    "/events",
    summary="Live events (Server-Sent Events): assignments, customer messages, queue changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(403)},
)
async def events(
    request: Request,
    credentials: Credentials,
    desk: DeskDep,
    ticket: Annotated[
        str | None,
        Query(description="For EventSource: a single-use ticket from POST /api/v1/events/ticket"),
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Replay events after this id")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    if "token" in request.query_params:
        # URLs end up in access logs (ours, a proxy's): a bearer token never belongs in one
        raise api_error(
            401,
            "unauthorized",
            "?token= is not accepted (URLs are logged): send Authorization: Bearer <token>, or get a "
            "single-use ticket with POST /api/v1/events/ticket and pass ?ticket=",
        )
    database = desk.database
    agent, session_id = await _streaming_session(
        database, credentials.credentials if credentials else None, ticket
    )
    if not has_role(agent, "agent"):
        raise api_error(403, "forbidden", "content editors do not see customers' conversations")
    start = after
    if start is None:
        start = row_id(last_event_id)  # EventSource reconnecting; anything else is ignored
    if start is None:
        async with database.session() as session:
            start = await event_log.latest_event_id(session)
    cursor = sse.Cursor(start, SETTLE_SECONDS)
    only_for = None if has_role(agent, "supervisor") else agent.id
    reads = timedelta(hours=desk.config.past_holder_read_hours)

    async def read() -> list[str] | None:
        async with database.session() as session:
            if not await AgentRepository(session).session_is_live(session_id):
                return None  # logged out, deactivated, password changed or expired: so it ends
            rows = await event_log.events_after(session, cursor.position, only_for, QUEUE_EVENTS)
            fresh = cursor.take(rows, _written)
            shown = [EventOut.of(row) for row in fresh]
            if only_for is not None:
                await _without_private_text(session, shown, only_for, reads)
        return [sse.event(event.model_dump(), event.kind, event.id) for event in shown]

    what = f"agent events: reading the events of {agent.login}"
    return sse.response(sse.stream(request, desk.notifier.subscribe(), read, POLL_SECONDS, what))


async def _streaming_session(database: Database, token: str | None, ticket: str | None) -> tuple[Agent, int]:
    """Who opens the stream, under which log-in session: by bearer token, else by a single-use ticket."""
    if token is not None or not ticket:
        return await authenticate(database, token)
    async with database.session() as session:
        found = await AgentRepository(session).redeem_ticket(ticket)
    if found is None:
        raise api_error(401, "unauthorized", "invalid, expired or already used ticket: get a new one")
    return found


async def _without_private_text(
    session: AsyncSession, events: list[EventOut], agent_id: int, reads: timedelta
) -> None:
    """Drop the free text (a resolution's or a transfer's reason) of queue events about conversations the
    agent may not open (bot/storage/agent_view.py `access`): the event itself still moves their queue."""
    private = {
        e.conversation_id for e in events if e.conversation_id is not None and PRIVATE_TEXT & e.data.keys()
    }
    allowed = await agent_view.readable(session, private, agent_id, reads)
    for event in events:
        if event.conversation_id in private and event.conversation_id not in allowed:
            event.data = {key: value for key, value in event.data.items() if key not in PRIVATE_TEXT}


def _written(row: Event) -> tuple[int, datetime | None]:
    return row.id, row.created_at
