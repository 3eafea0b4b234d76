"""GET /metrics for Prometheus: loopback (metrics.allow) or a bearer token; HTTP latency by route template.

The recorded families are in bot/insights/metrics.py; the gauges here are read from the shared database
at scrape time, so every process answers the same queue, agents and backlogs.
"""

from __future__ import annotations

import hmac
import time
from datetime import datetime
from ipaddress import ip_address

from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app import SupportBot
from bot.insights import metrics
from bot.insights.metrics import Gauge
from bot.states import State
from bot.storage.models import Agent, Conversation, as_utc, utcnow
from bot.storage.models import Message as StoredMessage
from bot.web.deps import BotDep
from bot.web.errors import api_error

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def scrape(request: Request, bot: BotDep) -> Response:
    """The Prometheus text format; 403 unless the client is in metrics.allow or sends metrics.token."""
    if not _allowed(request, bot):
        raise api_error(
            403,
            "forbidden",
            "metrics are answered to the networks in metrics.allow, or with Authorization: Bearer "
            "<metrics.token>",
        )
    return Response(metrics.render(await read_gauges(bot)), media_type=CONTENT_TYPE)


def _allowed(request: Request, bot: SupportBot) -> bool:
    settings = bot.settings.metrics
    header = request.headers.get("authorization", "")
    if settings.token and header.lower().startswith("bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), settings.token.encode())
    host = request.client.host if request.client else None
    try:
        address = ip_address(host or "")
    except ValueError:
        return False  # a Unix socket or a test client without an address: not in any network
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in settings.allow)


async def read_gauges(bot: SupportBot, now: datetime | None = None) -> list[Gauge]:
    """What the database (and this process) says now: queue, agents, outbox and spool backlogs, model."""
    now = now or utcnow()
    waiting = (Conversation.state == State.WAITING, Conversation.assigned_agent_id.is_(None))
    async with bot.database.session() as session:
        length, oldest = (
            await session.execute(select(func.count(), func.min(Conversation.waiting_since)).where(*waiting))
        ).one()
        agents = dict(
            (
                await session.execute(
                    select(Agent.status, func.count()).where(Agent.active.is_(True)).group_by(Agent.status)
                )
            ).all()
        )
        outbox = (
            await session.execute(
                select(func.count()).where(
                    StoredMessage.direction == "out", StoredMessage.status == "pending"
                )
            )
        ).scalar_one()
    spool = await bot.spool.counts()
    oldest_wait = max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
    return [
        Gauge("queue_length", "Conversations waiting for an agent", float(length)),
        Gauge("queue_oldest_wait_seconds", "How long the longest-waiting customer has waited", oldest_wait),
        Gauge(
            "queue_sla_seconds",
            "handoff.sla_first_response: the wait flagged as an SLA breach",
            bot.settings.handoff.sla_first_response,
        ),
        Gauge("agents_online", "Agents online (active accounts)", float(agents.get("online", 0))),
        Gauge("outbox_backlog", "Replies stored but not sent yet (retries included)", float(outbox)),
        *(
            Gauge("spool_backlog", "Webhook bodies not processed: waiting, or failed (given up)", n, s)
            for n, s in (
                (float(spool.waiting), (("state", "waiting"),)),
                (float(spool.failed), (("state", "failed"),)),
            )
        ),
        Gauge(
            "model_call_running_seconds",
            "The oldest model call still running in the answering process (0: none)",
            _longest_model_call(bot),
        ),
        Gauge(
            "model_call_deadline_seconds",
            "policy.understanding_timeout_seconds: a model call running longer is stuck",
            bot.settings.policy.understanding_timeout_seconds,
        ),
    ]


def _longest_model_call(bot: SupportBot) -> float:
    try:
        return bot.engine.longest_model_call_seconds()
    except RuntimeError:  # no running loop (never in a request)
        return 0.0


class RequestTimer:
    """ASGI middleware: each HTTP request's duration by method, route template (not the raw path), status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            metrics.http_request(scope["method"], _template(scope), status, time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The matched route's path template; "unmatched" for 404s (raw paths would be unbounded labels)."""
    # FastAPI versions that nest included routers keep the full template (prefixes too) on the route's
    # effective context; older ones copy each route with its full path
    effective = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


def install_metrics(app: FastAPI, bot: SupportBot) -> None:
    """Add GET /metrics and the request timer, unless metrics.enabled is false."""
    if not bot.settings.metrics.enabled:
        return
    app.include_router(router)
    app.add_middleware(RequestTimer)
