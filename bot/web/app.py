"""The HTTP service: the routes the channels, the live desk (agent API), insights and console add; /healthz."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import __version__
from bot.app import SupportBot
from bot.content import intents_api, workspace_api
from bot.insights import api as insights
from bot.insights import flags_api
from bot.integrations.rasa_api import install_rasa_api
from bot.learning import api as learning
from bot.web import console, health
from bot.web.errors import install_error_handlers
from bot.web.hosts import install_host_checks
from bot.web.limits import BodyLimitMiddleware, BodyLimits
from bot.web.metrics import install_metrics
from bot.web.pages import install_pages
from bot.web.redact import install_access_log_redaction


def create_app(bot: SupportBot, start: bool = True) -> FastAPI:
    """Return the FastAPI app; its lifespan starts and stops `bot` unless start is False."""

    install_access_log_redaction()  # no token, ticket or visitor id in the access log

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_access_log_redaction()  # again, in case logging was configured after create_app
        if start:
            await bot.start(background=True)
        try:
            yield
        finally:
            if start:
                await bot.close()

    app = FastAPI(title="supportbot", version=__version__, lifespan=lifespan)
    app.state.bot = bot

    install_error_handlers(app)  # FastAPI's own 404, 405 and 422 in the API's shape (bot/web/errors.py)
    server = bot.settings.server  # 413 for bodies over their route's limit, before they are read whole
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits(server.max_body_bytes, server.body_limits))
    install_host_checks(app, server.allowed_hosts)  # relative redirects; other Host headers refused if set

    for channel in bot.channels.values():
        router = channel.router(bot.inbox)
        if router is not None:
            app.include_router(router)
    install_rasa_api(app, bot)  # /api/v1/rasa for Rasa assistants, when rasa.api_token is set
    agent_routes = bot.handoff.routers()  # the live desk's: the agent API, /api/v1 (bot/handoff/api/)
    for router in agent_routes:
        app.include_router(router)
    if agent_routes:  # agents log in there: the insights and the console are theirs, on the same tokens
        app.include_router(insights.router)  # /api/v1/stats, misses, answers, KB additions
        app.include_router(learning.router)  # /api/v1/suggestions: KB entries from agents' answers
        app.include_router(flags_api.router)  # /api/v1/flags (Code Red) and /api/v1/kudos
        app.include_router(workspace_api.router)  # /api/v1/kb: the knowledge workspace (editors)
        app.include_router(intents_api.router)  # /api/v1/kb/intents: intents' examples, the same way
        if bot.settings.console.enabled:
            app.include_router(console.router)  # /api/v1/console: what the console needs besides
        install_pages(app, bot)  # /static, / (the demo shop) and /agent (the console, bot/web/pages.py)

    app.include_router(health.router)  # /healthz (bot/web/health.py)
    install_metrics(app, bot)  # /metrics for Prometheus, HTTP latency by route (bot/web/metrics.py)

    return app
