"""The `supportbot` command line: run, chat, kb check / build, agents, spool."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.config import Settings, load_settings
from bot.errors import SupportBotError

if TYPE_CHECKING:
    from bot.delivery.spool import InboundSpool, SpoolEntry
    from bot.storage.database import Database

T = TypeVar("T")


class _Context:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


pass_context = click.make_pass_decorator(_Context)


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
    ctx.obj = _Context(config)


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8080).")
@pass_context
def run(ctx: _Context, host: str | None, port: int | None) -> None:
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
    from bot.web.console import ensure_demo_agent

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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per reply.")
@click.option("--customer", default=None, help="Customer id (default: a new one each session).")
@click.option("--lang", default=None, help="Language hint, as a messenger would send it (e.g. ru).")
@pass_context
def chat(ctx: _Context, as_json: bool, customer: str | None, lang: str | None) -> None:
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


@cli.command("eval")
@click.option(
    "--train", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV: text,intent[,lang]."
)
@click.option(
    "--test", "test_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV to score."
)
@click.option(
    "--val", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV to calibrate on."
)
@click.option("--clinc", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CLINC150 JSON.")
@click.option("--oos-label", default="oos", show_default=True, help="Label of out-of-scope rows.")
@click.option(
    "--wrong-answer-cost",
    type=click.FloatRange(min=0.0, min_open=True),
    help="How much worse a wrong answer is than none (default: policy.wrong_answer_cost, 2).",
)
@click.option(
    "--oos-share",
    type=click.FloatRange(0.0, 0.9),
    help="Share of out-of-scope traffic the thresholds are calibrated for (rarer oos examples are weighted up; "
    "default: policy.oos_share, 0.2).",
)
@pass_context
def eval_command(
    ctx: _Context,
    train: Path | None,
    test_file: Path | None,
    val: Path | None,
    clinc: Path | None,
    oos_label: str,
    wrong_answer_cost: float | None,
    oos_share: float | None,
) -> None:
    """Score the intent layer on labelled messages; the last stdout line is one JSON object.

    Without --train the configured KB and intents are used. Without --val the thresholds come from
    cross-validation over the training data, never from the test file; with --val the head's L2 and
    the lexical signal are chosen on it as well.
    """
    from bot.quality.evaluation import evaluate, load_clinc, load_csv

    if clinc is not None:
        train_rows, val_rows, test_rows = load_clinc(clinc)
    elif test_file is not None:
        test_rows = load_csv(test_file, oos_label)
        train_rows = load_csv(train, oos_label) if train else []
        val_rows = load_csv(val, oos_label) if val else []
    else:
        raise click.UsageError("give --test FILE (with optional --train/--val) or --clinc FILE")
    result = evaluate(
        ctx.settings,
        test_rows,
        train_rows or None,
        val_rows or None,
        wrong_answer_cost=ctx.settings.policy.wrong_answer_cost
        if wrong_answer_cost is None
        else wrong_answer_cost,
        oos_share=ctx.settings.policy.oos_share if oos_share is None else oos_share,
    )
    click.echo(json.dumps(result, ensure_ascii=False))


@cli.command()
@click.option("--entries", default=200, show_default=True, help="Synthetic KB entries (5 questions each).")
@click.option("--messages", default=500, show_default=True, help="Messages to push through the engine.")
@click.option("--concurrency", default=20, show_default=True, help="Concurrent conversations.")
@click.option("--search-only", is_flag=True, help="Only time the vector search over random unit vectors.")
@click.option("--database", "database_url", default=None, help="Database URL (default: a temp SQLite file).")
@pass_context
def bench(
    ctx: _Context, entries: int, messages: int, concurrency: int, search_only: bool, database_url: str | None
) -> None:
    """Measure latency and throughput of the whole engine; the last stdout line is JSON."""
    from bot.quality.benchmark import bench_search_only, run_bench

    if search_only:
        click.echo(json.dumps(bench_search_only(entries)))
        return
    settings = ctx.settings
    if database_url:
        settings = settings.model_copy(deep=True)
        settings.database.url = database_url
    click.echo(json.dumps(run_bench(settings, entries, messages, concurrency), ensure_ascii=False))


@cli.group()
def kb() -> None:
    """Knowledge-base tools: check, calibrate, build, misses."""


@kb.command("check")
@click.option(
    "--no-similarity", is_flag=True, help="Skip the embedding check for entries that are too close."
)
@pass_context
def kb_check(ctx: _Context, no_similarity: bool) -> None:
    """Validate kb/ and intents/: YAML errors with file:line, duplicates, missing languages."""
    from bot.content.check import check_content, similarity_warnings

    report = check_content(ctx.settings)
    if not report.problems and not no_similarity:
        report.warnings.extend(similarity_warnings(ctx.settings))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s) found", err=True)
        sys.exit(1)
    click.echo(f"ok: {report.entries} KB entries, {report.intents} intents, {report.examples} examples")


@kb.command("calibrate")
@click.option(
    "--wrong-answer-cost",
    type=click.FloatRange(min=0.0, min_open=True),
    help="How much worse a wrong answer is than none (default: policy.wrong_answer_cost, 2).",
)
@pass_context
def kb_calibrate(ctx: _Context, wrong_answer_cost: float | None) -> None:
    """Pick answer/clarify thresholds by cross-validation over the KB and intents (oos included)."""
    from bot.nlu.matcher import Matcher

    settings = ctx.settings
    if settings.policy.calibration_file is None:
        raise click.UsageError("policy.calibration_file is empty in the config: nowhere to write")
    data = Matcher.load(settings, calibrate=False).calibrate(wrong_answer_cost)
    path = settings.resolve(settings.policy.calibration_file)
    click.echo(json.dumps({**data, "file": str(path)}, ensure_ascii=False))


@kb.command("misses")
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(min=1), help="How far back to look."
)
@click.option(
    "--limit", default=200, show_default=True, type=click.IntRange(min=1), help="At most this many."
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the CSV here (default: stdout)."
)
@pass_context
def kb_misses(ctx: _Context, days: int, limit: int, out: Path | None) -> None:
    """The questions the bot failed on (fallbacks, clarifications, 👎 answers), most frequent first, as CSV.

    Fill in the empty `intent` column (a KB entry id, or oos) and the file scores the bot with
    `supportbot eval --test`; its rows are what new KB questions and out-of-scope examples come from.
    """
    from datetime import timedelta

    from bot.content.misses import collect_misses, write_csv
    from bot.storage.models import utcnow

    misses = _on_database(
        ctx.settings, lambda database: collect_misses(database, utcnow() - timedelta(days=days), limit)
    )
    if out is None:
        write_csv(misses, sys.stdout)
    else:
        with out.open("w", encoding="utf-8", newline="") as handle:
            write_csv(misses, handle)
    asked = sum(m.count for m in misses)
    click.echo(
        f"{len(misses)} distinct questions missed ({asked} messages) in the last {days} days", err=True
    )


@kb.command("build")
@pass_context
def kb_build(ctx: _Context) -> None:
    """Embed the KB and intents and cache the search index (done at start-up too)."""
    from bot.nlu.matcher import Matcher

    matcher = Matcher.load(ctx.settings)
    click.echo(
        f"index ready: {len(matcher.index.items)} sentences, model {matcher.encoder.model_id}, "
        f"cache {ctx.settings.resolve(ctx.settings.embedding.cache_dir)}"
    )


@cli.command()
@click.option(
    "--days", default=30, show_default=True, type=click.IntRange(min=1), help="How far back to look."
)
@pass_context
def stats(ctx: _Context, days: int) -> None:
    """The support lead's numbers (conversations, bot answer rate, handoffs, waits, SLA, 👍/👎, CSAT) as JSON."""
    from bot.insights.stats import compute_stats

    numbers = _on_database(ctx.settings, lambda database: compute_stats(database, days))
    click.echo(json.dumps(numbers.as_dict(), ensure_ascii=False))


@cli.group()
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
    type=click.Choice(["agent", "supervisor", "admin"]),
    help="supervisor: sees and moves every conversation; admin: also manages agents.",
)
@pass_context
def agents_add(
    ctx: _Context, login: str, password: str, name: str | None, languages: str, capacity: int, role: str
) -> None:
    """Create an agent who can log in to the agent API (POST /api/v1/auth/login)."""
    from bot.handoff.agents import AgentRepository, public_agent

    async def add(database: Database) -> dict[str, Any]:
        async with database.session() as session:
            agent = await AgentRepository(session).create(login, password, name, role, languages, capacity)
            await session.flush()
            return public_agent(agent, 0)

    click.echo(json.dumps(_on_database(ctx.settings, add), ensure_ascii=False))


@agents.command("list")
@pass_context
def agents_list(ctx: _Context) -> None:
    """Print every agent with role, languages, capacity, status and current load (one JSON per line)."""
    from bot.handoff.agents import AgentRepository, public_agent

    async def listing(database: Database) -> list[dict[str, Any]]:
        async with database.session() as session:
            repo = AgentRepository(session)
            loads = await repo.loads()
            return [public_agent(agent, loads.get(agent.id, 0)) for agent in await repo.all()]

    for agent in _on_database(ctx.settings, listing):
        click.echo(json.dumps(agent, ensure_ascii=False))


@cli.group()
def spool() -> None:
    """The inbound spool (webhook bodies kept until processed): list, show, retry."""


_LISTED_ERROR = 200  # characters of last_error a listing shows; `spool show` prints all of it


@spool.command("list")
@click.option(
    "--all", "include_processed", is_flag=True, help="Include processed bodies (with processed_at)."
)
@pass_context
def spool_list(ctx: _Context, include_processed: bool) -> None:
    """Print the bodies not processed, oldest first, one JSON per line; never their content.

    state is "waiting" (the service replays it) or "failed" (given up after spool.max_attempts).
    """
    entries = _on_spool(ctx.settings, lambda spool: spool.entries(include_processed))
    for entry in entries:
        click.echo(json.dumps(_spool_entry_json(entry, include_processed), ensure_ascii=False))


@spool.command("show")
@click.argument("spool_id", metavar="ID", type=int)
@pass_context
def spool_show(ctx: _Context, spool_id: int) -> None:
    """Print one body with its content (UTF-8, undecodable bytes replaced) as JSON: it holds personal data."""
    entry = _on_spool(ctx.settings, lambda spool: spool.entry(spool_id))
    data = _spool_entry_json(entry, processed_at=True, error_limit=None)
    data["body"] = (entry.body or b"").decode("utf-8", errors="replace")
    click.echo(json.dumps(data, ensure_ascii=False))


@spool.command("retry")
@click.argument("spool_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option("--failed", "all_failed", is_flag=True, help="Every body given up (state failed).")
@pass_context
def spool_retry(ctx: _Context, spool_ids: tuple[int, ...], all_failed: bool) -> None:
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

    return _on_database(settings, lambda database: work(InboundSpool(database, {}, settings.spool)))


def _on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the configured database (migrated to the latest schema), run `work` on it, close it."""
    from bot.storage.database import Database

    async def run() -> T:
        database = Database(settings.database_url)
        try:
            await database.migrate()
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


def main() -> None:
    """Entry point: turn our errors into one clear line and exit code 2."""
    try:
        cli(standalone_mode=True)
    except SupportBotError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
