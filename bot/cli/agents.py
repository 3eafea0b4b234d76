"""`supportbot agents`: add and list the live agents."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from bot.cli.context import CommandContext, on_database, pass_context

if TYPE_CHECKING:
    from bot.storage.database import Database


@click.group()
def agents() -> None:
    """Live agents: add, list."""


@agents.command("add")
@click.option("--login", required=True, help="What the agent logs in with (letters, digits, . _ @ -).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters (asked for when not given); stored as an argon2 hash.",
)
@click.option(
    "--name", default=None, help="Shown to customers: '<name> has joined the chat' (default: login)."
)
@click.option("--languages", default="", help="Comma-separated language codes, e.g. ru,en (empty: any).")
@click.option("--capacity", default=3, show_default=True, type=int, help="Conversations held at once.")
@click.option(
    "--role",
    default="agent",
    show_default=True,
    type=click.Choice(["agent", "supervisor", "admin", "editor"]),
    help="supervisor: sees and moves every conversation; admin: also manages agents; editor: edits the "
    "knowledge base in the console and sees its insights, never customers' conversations.",
)
@click.option(
    "--telegram-user-id",
    default=None,
    type=int,
    help="Their Telegram account's numeric id: links them to the agent desk (docs/telegram-desk.md).",
)
@pass_context
def agents_add(
    ctx: CommandContext,
    login: str,
    password: str,
    name: str | None,
    languages: str,
    capacity: int,
    role: str,
    telegram_user_id: int | None,
) -> None:
    """Create an agent who can log in to the agent API (POST /api/v1/auth/login)."""
    from bot.handoff.agents import AgentRepository, public_agent

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as session:
            agent = await AgentRepository(session).create(
                login, password, name, role, languages, capacity, telegram_user_id
            )
            await session.flush()
            return public_agent(agent, 0)

    click.echo(json.dumps(on_database(ctx.settings, add), ensure_ascii=False))


@agents.command("list")
@pass_context
def agents_list(ctx: CommandContext) -> None:
    """Print every agent with role, languages, capacity, status and current load (one JSON per line)."""
    from bot.handoff.agents import AgentRepository, public_agent

    async def listing(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session:
            repo = AgentRepository(session)
            loads = await repo.loads()
            return [public_agent(agent, loads.get(agent.id, 0)) for agent in await repo.all()]

    for agent in on_database(ctx.settings, listing):
        click.echo(json.dumps(agent, ensure_ascii=False))
