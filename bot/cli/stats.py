"""`supportbot stats`: the support lead's numbers as JSON."""

from __future__ import annotations

import json

import click

from bot.cli.context import CommandContext, on_database, pass_context


@click.command()
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(min=1), help="How far back to look."
)
@pass_context
def stats(ctx: CommandContext, days: int) -> None:
    """The support lead's numbers (conversations, bot answer rate, handoffs, waits, SLA, 👍/👎, CSAT) as JSON."""
    from bot.insights.stats import compute_stats

    numbers = on_database(ctx.settings, lambda database: compute_stats(database, days))
    click.echo(json.dumps(numbers.as_dict(), ensure_ascii=False))
