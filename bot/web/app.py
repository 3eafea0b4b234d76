"""The HTTP service: health check, and the routes channels and later the agent API add."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot import __version__
from bot.app import SupportBot
from bot.insights import api as insights
from bot.web import console
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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        """Answer 422 in FastAPI's shape, escaping what JSON's UTF-8 cannot carry as it is."""
        # FastAPI's own handler echoes the input, and a lone surrogate ("\ud800", valid JSON) made it a 500
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Under /api/, an unknown path or method also answers in the API's shape ({"detail": {code, message}})."""
        if request.url.path.startswith("/api/") and isinstance(exc.detail, str):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
            if code is not None:
                what = (
                    "no such API path" if exc.status_code == 404 else f"{request.method} is not allowed here"
                )
                message = f"{what}: {request.method} {request.url.path} (the API is described at /docs)"
                body = {"detail": {"code": code, "message": message}}
                return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    for channel in bot.channels.values():
        router = channel.router(bot.inbox)
        if router is not None:
            app.include_router(router)
    agent_routes = bot.handoff.routers()  # the live desk's: the agent API, /api/v1 (bot/handoff/api/)
    for router in agent_routes:
        app.include_router(router)
    if agent_routes:  # agents log in there: the insights and the console are theirs, on the same tokens
        app.include_router(insights.router)  # /api/v1/stats, misses, answers, KB additions
        if bot.settings.console.enabled:
            app.include_router(console.router)  # /api/v1/console: what the console needs besides
        install_pages(app, bot)  # /static, / (the demo shop) and /agent (the console, bot/web/pages.py)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Report whether the database answers, the knowledge base is loaded and the model is not stuck,
        and the spool's backlog; 503 when any of that fails, so an orchestrator restarts the process."""
        checks: dict[str, object] = {"version": __version__}
        healthy = True
        try:
            async with bot.database.session() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            # webhook bodies acknowledged but not processed yet, and those given up (see README)
            counts = await bot.spool.counts()
            checks["spool"] = {"waiting": counts.waiting, "failed": counts.failed}
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
            healthy = False
        try:
            matcher = bot.matcher()
            checks["kb_entries"] = len(matcher.kb.entries)
            checks["model"] = matcher.encoder.model_id
            # a model call running past the deadline is hung (messages meanwhile go to people): restart
            longest = bot.engine.longest_model_call_seconds()
            checks["longest_model_call_seconds"] = round(longest, 1)
            if longest > bot.settings.policy.understanding_timeout_seconds:
                checks["model_state"] = "stuck"
                healthy = False
        except RuntimeError:
            checks["kb_entries"] = 0
            healthy = False
        checks["status"] = "ok" if healthy else "degraded"
        return JSONResponse(checks, status_code=200 if healthy else 503)

    return app
