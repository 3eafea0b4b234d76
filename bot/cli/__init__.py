"""The `supportbot` command line: run, chat, eval, bench, kb, stats, agents, spool, doctor (one module per group)."""

from __future__ import annotations

import sys

import click

from bot.cli import agents, content, doctor, flags, quality, service, spool, stats
from bot.cli.context import CommandContext
from bot.errors import SupportBotError


@click.group()
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="SUPPORTBOT_CONFIG",
    help="Config file (default: ./config.yaml; env SUPPORTBOT_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """supportbot: answer FAQ questions by meaning, hand the rest to people."""
    ctx.obj = CommandContext(config)


for command in (
    service.run,
    service.chat,
    quality.eval_command,
    quality.bench,
    content.kb,
    stats.stats,
    agents.agents,
    spool.spool,
    flags.flags,
    doctor.doctor,
):
    cli.add_command(command)


def main() -> None:
    """Entry point: turn our errors into one clear line and exit code 2."""
    try:
        cli(standalone_mode=True)
    except SupportBotError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
