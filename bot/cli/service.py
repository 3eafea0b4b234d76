"""`supportbot run` (the service) and `supportbot chat` (the bot in a terminal)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from typing import Any

import click

from bot.cli.context import CommandContext, pass_context
from bot.config import Settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8080).")
@pass_context
def run(ctx: CommandContext, host: str | None, port: int | None) -> None:
    """Start the service: webhooks, agent API, pages and /healthz."""
    import uvicorn

    from bot.adapters.registry import enabled_channels
    from bot.app import SupportBot
    from bot.web.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO: context-provider URLs carry the customer's phone or e-mail.
    # Our own code logs failed calls (with the cause) at WARNING and above.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = ctx.settings
    bot = SupportBot(settings, channels=enabled_channels(settings))
    app = create_app(bot)
    host = host or settings.server.host
    port = port or settings.server.port
    click.echo(f"supportbot: serving on http://{host}:{port} (database {settings.database_url})", err=True)
    _announce_pages(settings, host, port)
    # open event streams (web chat visitors, agents) never end by themselves: give them 5 s at shutdown
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


def _announce_pages(settings: Settings, host: str, port: int) -> None:
    """Print where the demo shop and the console are, and the demo agent on the embedded defaults."""
    from bot.web.demo_agent import ensure_demo_agent

    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if settings.console.demo_page and settings.channels.webchat.enabled:
        click.echo(f"supportbot: demo shop with the chat widget: {base}/", err=True)
    if not settings.console.enabled:
        return
    click.echo(f"supportbot: agent console: {base}/agent", err=True)
    demo = asyncio.run(ensure_demo_agent(settings))
    if demo is not None:
        kept = f" (kept in {demo.file})" if demo.file else ""
        click.echo(
            f"supportbot: demo agent: login {demo.login} password {demo.password}{kept}; "
            "add your own with `supportbot agents add`",
            err=True,
        )


def _reply_json(text: str, buttons: list[dict[str, str]], result: Any) -> str:
    decision = result.decision
    return json.dumps(
        {
            "text": text,
            "buttons": buttons,
            "decision": decision.public_kind if decision else "fallback",
            "entry": decision.label if decision else None,
            "score": round(decision.score, 4) if decision else None,
            "state": result.state,
            "conversation_id": result.conversation_id,
        },
        ensure_ascii=False,
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per reply.")
@click.option("--customer", default=None, help="Customer id (default: a new one each session).")
@click.option("--lang", default=None, help="Language hint, as a messenger would send it (e.g. ru).")
@pass_context
def chat(ctx: CommandContext, as_json: bool, customer: str | None, lang: str | None) -> None:
    """Talk to the bot in the terminal; reads stdin line by line when it is not a terminal."""
    from bot.adapters.terminal import TerminalChannel
    from bot.app import SupportBot

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = ctx.settings
    terminal = TerminalChannel(stream=None if as_json else sys.stdout)
    bot = SupportBot(settings, channels=[terminal])
    customer_id = customer or f"terminal-{uuid.uuid4().hex[:8]}"
    interactive = sys.stdin.isatty()

    async def session() -> None:
        await bot.start()
        try:
            if interactive:
                click.echo("Type your question (Ctrl-D to quit). Numbers pick a button.", err=True)
            while True:
                if interactive:
                    click.echo("you> ", nl=False, err=True)
                line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                message = terminal.parse(line, customer_id=customer_id, language=lang)
                result = await bot.receive(message)
                if as_json:
                    for _, reply in result.replies:
                        buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
                        click.echo(_reply_json(reply.text, buttons, result))
                    if result.replies:
                        terminal.last_buttons = {
                            str(i): b.payload for i, b in enumerate(result.replies[-1][1].buttons, start=1)
                        }
        finally:
            await bot.close()

    asyncio.run(session())
