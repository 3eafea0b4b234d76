"""The agent API under /api/v1: log in, go online, see the queue and the card, answer, move, resolve.

Every endpoint but login needs `Authorization: Bearer <token>` (401 without a valid one) and checks the
role (403): agents see the queue and their own conversations; supervisors see and move everything; admins
also manage agents. Domain errors come back as {"detail": {"code": ..., "message": ...}}.

Log-in failures are limited per login name and per client address (bot/ratelimit.py; 429 + Retry-After).
No secret ever goes in a URL: the live-event stream takes the token in the header, or a single-use ticket
(POST /events/ticket) where a header cannot be sent; `?token=` is refused. A stream ends with the log-in
session it was opened under (log-out, password change, deactivation, expiry).
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import OutsideMessagingWindow
from bot.handoff.agents import (
    AgentError,
    AgentRepository,
    DuplicateAgent,
    actor,
    check_capacity,
    check_role,
    has_role,
    hash_password,
    iso,
    parse_languages,
    public_agent,
    verify_password,
)
from bot.handoff.assignment import HandoffConflict, audit
from bot.handoff.bearer import Credentials, authenticate, role_agent, token_agent, token_session
from bot.handoff.context import context_card
from bot.handoff.live import LiveHandoff
from bot.handoff.moves import Forbidden, NotFound, TemplateFailed
from bot.handoff.queue import queue_order
from bot.insights.stats import compute_stats
from bot.states import State
from bot.storage.models import (
    MAX_ID,
    Agent,
    Assignment,
    Conversation,
    Customer,
    Event,
    Message,
    as_utc,
    row_id,
)
from bot.web import sse
from bot.web.errors import api_error, errors
from bot.web.ratelimit import Limiter, MemoryLimiter, Quota

# Events every agent's stream carries (the queue as a whole); the rest go to the agent concerned.
QUEUE_EVENTS = ("queued", "left_queue", "returned_to_queue", "assigned", "resolved")
POLL_SECONDS = 1.0  # other processes' events are picked up from the table at least this often
SETTLE_SECONDS = 30.0  # a transaction older than this has committed (or never will)

ConversationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The conversation's id")]


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise api_error(404, "not_found", str(exc)) from exc
    except Forbidden as exc:
        raise api_error(403, "forbidden", str(exc)) from exc
    except OutsideMessagingWindow as exc:
        raise api_error(409, "outside_messaging_window", str(exc)) from exc
    except HandoffConflict as exc:
        raise api_error(409, "conflict", str(exc)) from exc
    except DuplicateAgent as exc:
        raise api_error(409, "duplicate_agent", str(exc)) from exc
    except AgentError as exc:
        raise api_error(422, "invalid_agent", str(exc)) from exc


# --- request bodies -------------------------------------------------------------------------------


class LoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class StatusIn(BaseModel):
    status: Literal["online", "away", "offline"]


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096, description="Plain text; not blank")


class TransferIn(BaseModel):
    agent_login: str | None = Field(default=None, description="Pass the conversation to this online agent")
    queue: bool = Field(default=False, description="Or put it back in the queue (keeping its place)")
    reason: str | None = Field(default=None, max_length=500)


class ResolveIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class AgentIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    name: str | None = Field(default=None, max_length=128)
    role: Literal["agent", "supervisor", "admin"] = "agent"
    languages: list[str] = []
    capacity: int = Field(default=3, ge=0, le=50)


class AgentPatch(BaseModel):
    name: str | None = Field(default=None, max_length=128)
    role: Literal["agent", "supervisor", "admin"] | None = None
    languages: list[str] | None = None
    capacity: int | None = Field(default=None, ge=0, le=50)
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    status: Literal["online", "away", "offline"] | None = None


def _blank(text: str) -> str:
    if not text.strip():
        raise api_error(422, "blank_text", "the text is empty")
    return text


# --- serialisation --------------------------------------------------------------------------------


def _customer(customer: Customer | None) -> dict[str, Any] | None:
    if customer is None:
        return None
    return {
        "id": customer.id,
        "channel": customer.channel,
        "external_id": customer.external_id,
        "name": customer.display_name,
        "username": customer.username,
        "phone": customer.phone,
        "language": customer.language,
    }


def _agent_ref(agent: Agent | None) -> dict[str, Any] | None:
    return None if agent is None else {"id": agent.id, "login": agent.login, "name": agent.name}


def _summary(
    conversation: Conversation, customer: Customer | None, agent: Agent | None, position: int | None
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "state": conversation.state,
        "channel": conversation.channel,
        "language": conversation.language,
        "customer": _customer(customer),
        "assigned_agent": _agent_ref(agent),
        "waiting_since": iso(conversation.waiting_since),
        "queue_position": position,
        "priority": conversation.priority or 0,
        "reason": (conversation.handoff_context or {}).get("reason"),
        "handoff_at": iso(conversation.handoff_at),
        "first_response_at": iso(conversation.first_response_at),
        "resolved_at": iso(conversation.resolved_at),
        "last_customer_message_at": iso(conversation.last_customer_message_at),
        "sla_breached": conversation.sla_breached_at is not None,
        "sla_breached_at": iso(conversation.sla_breached_at),
        "updated_at": iso(conversation.updated_at),
    }


def _message(message: Message, logins: dict[int, str]) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "sender": message.sender,
        "agent": logins.get(message.agent_id) if message.agent_id else None,
        "text": message.text,
        "attachments": message.attachments or [],
        "buttons": message.buttons or [],
        "status": message.status,
        "delivery_status": message.delivery_status,
        "last_error": message.last_error,
        "at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
    }


def _event(row: Event) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "conversation_id": row.conversation_id,
        "agent_id": row.agent_id,
        "actor": row.actor,
        "data": row.data or {},
        "at": iso(row.created_at),
    }


def _sla(conversation: Conversation) -> dict[str, Any]:
    def seconds(start: Any, end: Any) -> float | None:
        if start is None or end is None:
            return None
        return round((as_utc(end) - as_utc(start)).total_seconds(), 1)

    return {
        "first_response_seconds": seconds(conversation.handoff_at, conversation.first_response_at),
        "resolution_seconds": seconds(conversation.handoff_at, conversation.resolved_at),
        "breached": conversation.sla_breached_at is not None,
    }


# --- the router -----------------------------------------------------------------------------------


def agent_api(desk: LiveHandoff, limiter: Limiter | None = None) -> APIRouter:
    """Return the /api/v1 router over `desk` (mounted by bot/web.py); `limiter` counts log-in failures."""
    database = desk.database
    limiter = limiter or MemoryLimiter()
    router = APIRouter(prefix="/api/v1", tags=["agents"], responses=errors(401))

    current_session = token_session(database)
    Me = Annotated[Agent, Depends(token_agent(database))]
    Supervisor = Annotated[Agent, Depends(role_agent(database, "supervisor"))]
    Admin = Annotated[Agent, Depends(role_agent(database, "admin"))]

    async def may_see(session: AsyncSession, agent: Agent, conversation: Conversation) -> bool:
        if has_role(agent, "supervisor") or conversation.state == State.WAITING:
            return True
        if conversation.assigned_agent_id == agent.id:
            return True
        held = await session.execute(
            select(Assignment.id)
            .where(Assignment.conversation_id == conversation.id, Assignment.agent_id == agent.id)
            .limit(1)
        )
        return held.first() is not None

    async def visible(session: AsyncSession, agent: Agent, conversation_id: int) -> Conversation:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise api_error(404, "not_found", f"no conversation with id {conversation_id}")
        if not await may_see(session, agent, conversation):
            raise api_error(403, "forbidden", "this conversation is with another agent (supervisors see all)")
        return conversation

    async def positions(session: AsyncSession) -> dict[int, int]:
        ids = (
            await session.execute(
                select(Conversation.id)
                .where(Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
                .order_by(*queue_order())
            )
        ).scalars()
        return {conversation_id: index for index, conversation_id in enumerate(ids, start=1)}

    async def summaries(session: AsyncSession, rows: list[Conversation]) -> list[dict[str, Any]]:
        customers = {
            c.id: c
            for c in (
                await session.execute(select(Customer).where(Customer.id.in_({r.customer_id for r in rows})))
            ).scalars()
        }
        agents = await AgentRepository(session).by_ids(
            r.assigned_agent_id for r in rows if r.assigned_agent_id
        )
        places = await positions(session) if any(r.state == State.WAITING for r in rows) else {}
        return [
            _summary(
                r,
                customers.get(r.customer_id),
                agents.get(r.assigned_agent_id) if r.assigned_agent_id else None,
                places.get(r.id),
            )
            for r in rows
        ]

    # --- auth ---------------------------------------------------------------------------------

    def login_quotas(request: Request, login: str) -> tuple[Quota, Quota]:
        window = desk.config.login_window_seconds
        address = request.client.host if request.client else "unknown"
        return (
            Quota(f"login:account:{login.strip().casefold()}", desk.config.login_max_failures, window),
            Quota(f"login:address:{address}", desk.config.login_max_failures_per_address, window),
        )

    @router.post(
        "/auth/login",
        summary="Log in; returns a bearer token",
        responses=errors(
            401,
            429,
            described={
                401: "Wrong login or password",
                429: "Too many failed log-ins for this login or address: wait Retry-After seconds",
            },
        ),
    )
    async def login(body: LoginIn, request: Request) -> dict[str, Any]:
        # Every attempt is counted before the password is checked (so parallel guesses cannot slip past
        # the limit); a successful one clears the account's count and is taken back from the address's.
        account, address = login_quotas(request, body.login)
        attempt = await limiter.hit(account, address)
        if not attempt.allowed:
            retry = attempt.retry_seconds
            raise api_error(
                429,
                "rate_limited",
                f"too many failed log-ins: try again in {retry} s",
                {"Retry-After": str(retry)},
            )
        async with database.session() as session:
            agent = await AgentRepository(session).by_login(body.login)
        password_hash = agent.password_hash if agent is not None and agent.active else None
        if not await asyncio.to_thread(verify_password, password_hash, body.password):
            raise api_error(401, "unauthorized", "wrong login or password")
        assert agent is not None
        await limiter.reset(account.key)
        await limiter.undo(attempt, address.key)
        async with database.session() as session:
            token, expires = await AgentRepository(session).issue_token(
                agent, timedelta(hours=desk.config.token_ttl_hours)
            )
            audit(session, None, "agent_login", actor(agent), agent.id)
        return {
            "token": token,
            "token_type": "bearer",
            "expires_at": iso(expires),
            "agent": public_agent(agent),
        }

    @router.post("/auth/logout", status_code=204, summary="Revoke this token")
    async def logout(agent: Me, credentials: Credentials) -> Response:
        async with database.session() as session:
            if credentials is not None:
                await AgentRepository(session).revoke_token(credentials.credentials)
            audit(session, None, "agent_logout", actor(agent), agent.id)
        desk.notifier.notify()  # this session's open event streams end now
        return Response(status_code=204)

    # --- agents -------------------------------------------------------------------------------

    @router.get("/agents/me", summary="Who am I, with my current load")
    async def me(agent: Me) -> dict[str, Any]:
        async with database.session() as session:
            load = (await AgentRepository(session).loads([agent.id])).get(agent.id, 0)
        return public_agent(agent, load)

    @router.put("/agents/me/status", summary="Go online (get conversations), away, or offline")
    async def my_status(body: StatusIn, agent: Me) -> dict[str, Any]:
        with _domain_errors():
            change = await desk.moves.set_status(agent.id, body.status, actor(agent))
        return {
            "status": change.status,
            "assigned": [a.conversation_id for a in change.assigned if a.agent_id == agent.id],
            "requeued": change.requeued,
        }

    @router.get("/agents", summary="All agents with status and load (supervisors)", responses=errors(403))
    async def list_agents(_: Supervisor) -> list[dict[str, Any]]:
        async with database.session() as session:
            repo = AgentRepository(session)
            agents = await repo.all()
            loads = await repo.loads()
        return [public_agent(a, loads.get(a.id, 0)) for a in agents]

    @router.post(
        "/agents",
        status_code=201,
        summary="Create an agent (admins)",
        responses=errors(403, 409, 422, described={409: "An agent with this login exists"}),
    )
    async def create_agent(body: AgentIn, admin: Admin) -> dict[str, Any]:
        with _domain_errors():
            async with database.session() as session:
                agent = await AgentRepository(session).create(
                    body.login, body.password, body.name, body.role, body.languages, body.capacity
                )
                audit(
                    session, None, "agent_created", actor(admin), agent.id, login=agent.login, role=agent.role
                )
        return public_agent(agent, 0)

    @router.patch("/agents/{login}", summary="Change an agent (admins)", responses=errors(403, 404, 422))
    async def update_agent(login: str, body: AgentPatch, admin: Admin) -> dict[str, Any]:
        with _domain_errors():
            async with desk.transaction() as session:
                repo = AgentRepository(session)
                agent = await repo.by_login(login, lock=True)
                if agent is None:
                    raise NotFound(f"no agent with login {login!r}")
                changed: dict[str, Any] = {}
                if body.name is not None:
                    agent.name = changed["name"] = body.name.strip() or agent.login
                if body.role is not None:
                    agent.role = changed["role"] = check_role(body.role)
                if body.languages is not None:
                    agent.languages = changed["languages"] = parse_languages(body.languages)
                if body.capacity is not None:
                    agent.capacity = changed["capacity"] = check_capacity(body.capacity)
                if body.password is not None:
                    agent.password_hash = await asyncio.to_thread(hash_password, body.password)
                    changed["password"] = "changed"
                    await repo.revoke_all(agent)
                if body.active is not None:
                    agent.active = changed["active"] = body.active
                    if not body.active:
                        await repo.revoke_all(agent)
                audit(session, None, "agent_updated", actor(admin), agent.id, **changed)
                agent_id = agent.id
                deactivated = body.active is False
            status = "offline" if deactivated else body.status
            if status is not None:
                await desk.moves.set_status(agent_id, status, actor(admin))
            if deactivated or body.password is not None:
                desk.notifier.notify()  # the agent's sessions ended: so do their open event streams
            async with database.session() as session:
                repo = AgentRepository(session)
                fresh = await repo.get(agent_id)
                assert fresh is not None
                load = (await repo.loads([agent_id])).get(agent_id, 0)
        return public_agent(fresh, load)

    @router.put(
        "/agents/{login}/status",
        summary="Set another agent's status (supervisors)",
        responses=errors(403, 404),
    )
    async def agent_status(login: str, body: StatusIn, supervisor: Supervisor) -> dict[str, Any]:
        async with database.session() as session:
            agent = await AgentRepository(session).by_login(login)
        if agent is None:
            raise api_error(404, "not_found", f"no agent with login {login!r}")
        with _domain_errors():
            change = await desk.moves.set_status(agent.id, body.status, actor(supervisor))
        return {
            "status": change.status,
            "assigned": [a.conversation_id for a in change.assigned if a.agent_id == agent.id],
            "requeued": change.requeued,
        }

    # --- queue and conversations --------------------------------------------------------------

    @router.get("/queue", summary="Queue length, staffing, business hours and the current wait estimate")
    async def queue(_: Me) -> dict[str, Any]:
        return await desk.queue_summary()

    @router.get(
        "/stats",
        summary="The support lead's numbers over the last `days` days (supervisors)",
        responses=errors(403),
    )
    async def stats(
        _: Supervisor, days: Annotated[int, Query(ge=1, le=366, description="How far back")] = 30
    ) -> dict[str, Any]:
        return (await compute_stats(database, days)).as_dict()

    @router.get("/conversations", summary="Conversations: the queue, mine, or (supervisors) all")
    async def conversations(
        agent: Me,
        state: Annotated[Literal["waiting", "with_agent", "resolved"] | None, Query()] = None,
        mine: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> list[dict[str, Any]]:
        query = select(Conversation)
        states = [state] if state else [State.WAITING, State.WITH_AGENT]
        query = query.where(Conversation.state.in_(states))
        if mine:
            query = query.where(Conversation.assigned_agent_id == agent.id)
        elif not has_role(agent, "supervisor"):
            # agents see the whole queue and their own conversations
            query = query.where(
                or_(Conversation.state == State.WAITING, Conversation.assigned_agent_id == agent.id)
            )
        if state == State.WAITING:
            query = query.order_by(*queue_order())
        else:
            query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        async with database.session() as session:
            rows = list((await session.execute(query.limit(limit).offset(offset))).scalars().all())
            return await summaries(session, rows)

    @router.get(
        "/conversations/{conversation_id}",
        summary="One conversation with messages and context card",
        responses=errors(403, 404),
    )
    async def conversation(conversation_id: ConversationId, agent: Me) -> dict[str, Any]:
        async with database.session() as session:
            row = await visible(session, agent, conversation_id)
            data = (await summaries(session, [row]))[0]
            messages = (
                (
                    await session.execute(
                        select(Message)
                        .where(Message.conversation_id == row.id)
                        .order_by(Message.id)
                        .limit(1000)
                    )
                )
                .scalars()
                .all()
            )
            logins = {
                a.id: a.login
                for a in (
                    await AgentRepository(session).by_ids(m.agent_id for m in messages if m.agent_id)
                ).values()
            }
            notes = (
                (
                    await session.execute(
                        select(Event)
                        .where(Event.conversation_id == row.id, Event.kind == "note")
                        .order_by(Event.id)
                    )
                )
                .scalars()
                .all()
            )
            data["messages"] = [_message(m, logins) for m in messages]
            data["notes"] = [
                {
                    "id": n.id,
                    "author": (n.data or {}).get("author"),
                    "text": (n.data or {}).get("text"),
                    "at": iso(n.created_at),
                }
                for n in notes
            ]
            data["context"] = await context_card(session, row)
            data["assignments"] = await history_of(session, row.id)
            data["sla"] = _sla(row)
        return data

    async def history_of(session: AsyncSession, conversation_id: int) -> list[dict[str, Any]]:
        rows = (
            await session.execute(
                select(Assignment, Agent)
                .join(Agent, Agent.id == Assignment.agent_id)
                .where(Assignment.conversation_id == conversation_id)
                .order_by(Assignment.assigned_at, Assignment.id)
            )
        ).all()
        return [
            {
                "agent": _agent_ref(agent),
                "assigned_at": iso(assignment.assigned_at),
                "assigned_by": assignment.assigned_by,
                "how": assignment.how,
                "first_response_at": iso(assignment.first_response_at),
                "ended_at": iso(assignment.ended_at),
                "end_reason": assignment.end_reason,
            }
            for assignment, agent in rows
        ]

    @router.get(
        "/conversations/{conversation_id}/history",
        summary="Who had this conversation, and every move",
        responses=errors(403, 404),
    )
    async def history(conversation_id: ConversationId, agent: Me) -> dict[str, Any]:
        async with database.session() as session:
            row = await visible(session, agent, conversation_id)
            events = (
                (
                    await session.execute(
                        select(Event).where(Event.conversation_id == row.id).order_by(Event.id)
                    )
                )
                .scalars()
                .all()
            )
            return {"assignments": await history_of(session, row.id), "events": [_event(e) for e in events]}

    @router.post(
        "/conversations/{conversation_id}/accept",
        summary="Take a waiting conversation",
        responses=errors(403, 404, 409),
    )
    async def accept(conversation_id: ConversationId, agent: Me) -> dict[str, Any]:
        with _domain_errors():
            await desk.moves.accept(conversation_id, agent.id)
        return await brief(conversation_id)

    @router.post(
        "/conversations/{conversation_id}/messages",
        status_code=201,
        summary="Reply to the customer",
        responses=errors(403, 404, 409, 422),
    )
    async def reply(conversation_id: ConversationId, body: TextIn, agent: Me) -> dict[str, Any]:
        with _domain_errors():
            row = await desk.moves.reply(conversation_id, agent.id, _blank(body.text))
        return _message(row, {agent.id: agent.login})

    @router.post(
        "/conversations/{conversation_id}/template",
        status_code=201,
        summary="Send the re-engagement template (outside WhatsApp's 24-hour window)",
        responses=errors(403, 404, 409, 502),
    )
    async def template(conversation_id: ConversationId, agent: Me) -> dict[str, Any]:
        with _domain_errors():
            try:
                row = await desk.moves.send_template(conversation_id, agent.id)
            except TemplateFailed as exc:
                raise api_error(502, "template_failed", str(exc)) from exc
        return _message(row, {agent.id: agent.login})

    @router.post(
        "/conversations/{conversation_id}/notes",
        status_code=201,
        summary="Internal note (not sent)",
        responses=errors(403, 404, 422),
    )
    async def note(conversation_id: ConversationId, body: TextIn, agent: Me) -> dict[str, Any]:
        async with database.session() as session:
            await visible(session, agent, conversation_id)
        with _domain_errors():
            note_id = await desk.moves.note(conversation_id, agent.id, _blank(body.text))
        return {"id": note_id, "author": agent.login, "text": body.text}

    @router.post(
        "/conversations/{conversation_id}/transfer",
        summary="To a named agent or back to the queue",
        responses=errors(403, 404, 409, 422),
    )
    async def transfer(conversation_id: ConversationId, body: TransferIn, agent: Me) -> dict[str, Any]:
        if bool(body.agent_login) == bool(body.queue):
            raise api_error(422, "invalid_transfer", 'give either "agent_login" or "queue": true')
        with _domain_errors():
            await desk.moves.transfer(conversation_id, agent.id, body.agent_login, body.queue, body.reason)
        return await brief(conversation_id)

    @router.post(
        "/conversations/{conversation_id}/resolve",
        summary="Close the conversation",
        responses=errors(403, 404, 409),
    )
    async def resolve(conversation_id: ConversationId, body: ResolveIn, agent: Me) -> dict[str, Any]:
        with _domain_errors():
            await desk.moves.resolve(conversation_id, agent.id, body.reason)
        return await brief(conversation_id)

    async def brief(conversation_id: int) -> dict[str, Any]:
        async with database.session() as session:
            row = await session.get(Conversation, conversation_id)
            assert row is not None
            return (await summaries(session, [row]))[0]

    # --- live events --------------------------------------------------------------------------

    @router.post(
        "/events/ticket",
        status_code=201,
        summary="A single-use ticket to open /api/v1/events where no header can be sent (EventSource)",
    )
    async def events_ticket(
        logged_in: Annotated[tuple[Agent, int], Depends(current_session)],
    ) -> dict[str, Any]:
        agent, session_id = logged_in
        ttl = desk.config.events_ticket_seconds
        async with database.session() as session:
            ticket, expires = await AgentRepository(session).issue_ticket(
                agent, timedelta(seconds=ttl), session_id
            )
        return {"ticket": ticket, "expires_at": iso(expires), "expires_in": ttl}

    @router.get(
        "/events",
        summary="Live events (Server-Sent Events): assignments, customer messages, queue changes",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(
        request: Request,
        credentials: Credentials,
        ticket: Annotated[
            str | None,
            Query(description="For EventSource: a single-use ticket from POST /api/v1/events/ticket"),
        ] = None,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_ID, description="Replay events after this id")
        ] = None,
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
        if credentials is not None:
            agent, session_id = await authenticate(database, credentials.credentials)
        elif ticket:
            async with database.session() as session:
                found = await AgentRepository(session).redeem_ticket(ticket)
            if found is None:
                raise api_error(401, "unauthorized", "invalid, expired or already used ticket: get a new one")
            agent, session_id = found
        else:
            agent, session_id = await authenticate(database, None)
        supervisor = has_role(agent, "supervisor")
        start = after
        if start is None:
            start = row_id(last_event_id)  # EventSource reconnecting; anything else is ignored
        if start is None:
            async with database.session() as session:
                start = int((await session.execute(select(func.max(Event.id)))).scalar_one() or 0)

        cursor = sse.Cursor(start, SETTLE_SECONDS)

        async def read() -> list[str] | None:
            query = select(Event).where(Event.id > cursor.position).order_by(Event.id).limit(500)
            if not supervisor:
                query = query.where(or_(Event.agent_id == agent.id, Event.kind.in_(QUEUE_EVENTS)))
            async with database.session() as session:
                if not await AgentRepository(session).session_is_live(session_id):
                    return None  # logged out, deactivated, password changed or expired: so it ends
                rows = (await session.execute(query)).scalars().all()
            fresh = cursor.take(rows, lambda row: (row.id, row.created_at))
            return [sse.event(_event(row), row.kind, row.id) for row in fresh]

        what = f"agent events: reading the events of {agent.login}"
        return sse.response(sse.stream(request, desk.notifier.subscribe(), read, POLL_SECONDS, what))

    return router
