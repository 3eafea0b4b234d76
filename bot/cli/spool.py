"""`supportbot spool`: list, show and retry the webhook bodies kept until processed."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.cli.context import CommandContext, on_database, pass_context
from bot.config import Settings

if TYPE_CHECKING:
    from bot.delivery.spool import InboundSpool, SpoolEntry

T = TypeVar("T")


@click.group()
def spool() -> None:
    """The inbound spool (webhook bodies kept until processed): list, show, retry."""


_LISTED_ERROR = 200  # characters of last_error a listing shows; `spool show` prints all of it


@spool.command("list")
@click.option(
    "--all", "include_processed", is_flag=True, help="Include processed bodies (with processed_at)."
)
@pass_context
def spool_list(ctx: CommandContext, include_processed: bool) -> None:
    """Print the bodies not processed, oldest first, one JSON per line; never their content.

    state is "waiting" (the service replays it) or "failed" (given up after spool.max_attempts).
    """
    entries = _on_spool(ctx.settings, lambda spool: spool.entries(include_processed))
    for entry in entries:
        click.echo(json.dumps(_spool_entry_json(entry, include_processed), ensure_ascii=False))


@spool.command("show")
@click.argument("spool_id", metavar="ID", type=int)
@pass_context
def spool_show(ctx: CommandContext, spool_id: int) -> None:
    """Print one body with its content (UTF-8, undecodable bytes replaced) as JSON: it holds personal data."""
    entry = _on_spool(ctx.settings, lambda spool: spool.entry(spool_id))
    data = _spool_entry_json(entry, processed_at=True, error_limit=None)
    data["body"] = (entry.body or b"").decode("utf-8", errors="replace")
    click.echo(json.dumps(data, ensure_ascii=False))


@spool.command("retry")
@click.argument("spool_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="Every body given up (state failed).")
@pass_context
def spool_retry(ctx: CommandContext, spool_ids: tuple[int, ...], all_failed: bool) -> None:
    """Have the running service replay these bodies: attempts back to 0, due now. Processes nothing itself.

    The replay needs the channels, which only `supportbot run` has: its next round (within
    spool.replay_interval_seconds) takes the bodies. Prints each one reset, one JSON per line.
    """
    if all_failed == bool(spool_ids):
        raise click.UsageError("give the ids to retry, or --failed (not both)")
    entries = _on_spool(
        ctx.settings, lambda spool: spool.retry_failed() if all_failed else spool.retry(spool_ids)
    )
    for entry in entries:
        click.echo(json.dumps(_spool_entry_json(entry, processed_at=False), ensure_ascii=False))
    if not entries:
        click.echo("no failed spooled webhooks: nothing to retry", err=True)
        return
    click.echo(
        f"{len(entries)} spooled webhook(s) due for replay; this command processes nothing itself: the running "
        f"service (`supportbot run`) replays them in its next round, within "
        f"spool.replay_interval_seconds ({ctx.settings.spool.replay_interval_seconds:g} s)",
        err=True,
    )


def _spool_entry_json(
    entry: SpoolEntry, processed_at: bool, error_limit: int | None = _LISTED_ERROR
) -> dict[str, Any]:
    from bot.storage.models import as_utc

    error = entry.last_error
    if error is not None and error_limit is not None and len(error) > error_limit:
        error = error[: error_limit - 1] + "…"
    data: dict[str, Any] = {
        "id": entry.id,
        "channel": entry.channel,
        "state": entry.state,
        "received_at": as_utc(entry.received_at).isoformat(),
        "attempts": entry.attempts,
        "claimed_until": as_utc(entry.claimed_until).isoformat(),
        "last_error": error,
        "size": entry.size,
    }
    if processed_at:
        data["processed_at"] = as_utc(entry.processed_at).isoformat() if entry.processed_at else None
    return data


def _on_spool(settings: Settings, work: Callable[[InboundSpool], Awaitable[T]]) -> T:
    """Run `work` on the inbound spool of the configured database; without channels: it replays nothing."""
    from bot.delivery.spool import InboundSpool

    return on_database(settings, lambda database: work(InboundSpool(database, {}, settings.spool)))
