"""The agents' live events (server-sent events): assignments, customer messages, queue changes, SLA.

An agent's stream carries the events that concern them and the queue's (every agent sees the queue move);
a supervisor's carries everything. No secret ever goes in a URL: the stream takes the token in the
header, or a single-use ticket (POST /api/v1/events/ticket) where a header cannot be sent; `?token=` is
refused. A stream ends with the log-in session it was opened under (log-out, password change,
deactivation, expiry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from bot.handoff.agents import AgentRepository, has_role
from bot.handoff.api.deps import Credentials, DeskDep, authenticate
from bot.handoff.api.schemas import EventOut
from bot.storage import event_log
from bot.storage.database import Database
from bot.storage.models import MAX_ID, Agent, Event, row_id
from bot.web import sse
from bot.web.errors import api_error, errors

# Events every agent's stream carries (the queue as a whole); the rest go to the agent concerned.
QUEUE_EVENTS = ("queued", "left_queue", "returned_to_queue", "assigned", "resolved")
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

    async def read() -> list[str] | None:
        async with database.session() as session:
            if not await AgentRepository(session).session_is_live(session_id):
                return None  # logged out, deactivated, password changed or expired: so it ends
            rows = await event_log.events_after(session, cursor.position, only_for, QUEUE_EVENTS)
        fresh = cursor.take(rows, _written)
        return [sse.event(EventOut.of(row).model_dump(), row.kind, row.id) for row in fresh]

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


def _written(row: Event) -> tuple[int, datetime | None]:
    return row.id, row.created_at
