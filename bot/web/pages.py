"""The pages `supportbot run` serves: the demo shop with the chat widget (/) and the agent console (/agent).

The console is this page plus a little JavaScript (bot/web/static/console.js) over the agent API and
/api/v1/console (bot/web/console.py). Neither page runs inline script or loads anything from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from bot import __version__
from bot.app import SupportBot

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
# Defence in depth: no inline script, nothing from other hosts. Customer text is set with textContent anyway.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
shop_router = APIRouter(include_in_schema=False)
console_router = APIRouter(include_in_schema=False)


@shop_router.get("/", response_class=HTMLResponse)
async def shop(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "shop.html", {"version": __version__}, headers=HEADERS)


@console_router.get("/agent", response_class=HTMLResponse)
async def agent_console(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "agent.html", {"version": __version__}, headers={**HEADERS, "X-Frame-Options": "DENY"}
    )


def install_pages(app: FastAPI, bot: SupportBot) -> None:
    """Mount /static and add the pages the settings ask for (the shop needs the web chat channel)."""
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    if bot.settings.console.demo_page and "webchat" in bot.channels:
        app.include_router(shop_router)
    if bot.settings.console.enabled:
        app.include_router(console_router)
