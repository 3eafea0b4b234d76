"""`supportbot eval` (how well the intent layer answers) and `supportbot bench` (how fast)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli.context import CommandContext, pass_context


@click.command("eval")
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
@click.option(
    "--shots",
    type=click.IntRange(min=1),
    help="Keep K questions per entry: a seeded sample of K training examples per intent (--train/--clinc; "
    "then no validation split is used: an editor has none), or the configured KB's first K questions.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the --shots sample.")
@click.option("--no-oos-train", is_flag=True, help="Drop the out-of-scope training examples (intent oos).")
@click.option(
    "--no-default-oos", is_flag=True, help="Leave the bundled generic out-of-scope set out of calibration."
)
@pass_context
def eval_command(
    ctx: CommandContext,
    train: Path | None,
    test_file: Path | None,
    val: Path | None,
    clinc: Path | None,
    oos_label: str,
    wrong_answer_cost: float | None,
    oos_share: float | None,
    shots: int | None,
    seed: int,
    no_oos_train: bool,
    no_default_oos: bool,
) -> None:
    """Score the intent layer on labelled messages; the last stdout line is one JSON object.

    Without --train the configured KB and intents are used. Without --val the thresholds come from
    cross-validation over the training data, never from the test file; with --val the head's L2 and
    the lexical signal are chosen on it as well.
    """
    from bot.quality.evaluation import Shape, evaluate, load_clinc, load_csv

    if clinc is not None:
        train_rows, val_rows, test_rows = load_clinc(clinc)
    elif test_file is not None:
        test_rows = load_csv(test_file, oos_label)
        train_rows = load_csv(train, oos_label) if train else []
        val_rows = load_csv(val, oos_label) if val else []
    else:
        raise click.UsageError("give --test FILE (with optional --train/--val) or --clinc FILE")
    if shots is not None and train_rows:
        val_rows = []  # an editor with K questions an entry has no labelled validation set either
    settings = ctx.settings
    if no_default_oos:
        settings = settings.model_copy(deep=True)
        settings.policy.default_oos = False
    result = evaluate(
        settings,
        test_rows,
        train_rows or None,
        val_rows or None,
        wrong_answer_cost=ctx.settings.policy.wrong_answer_cost
        if wrong_answer_cost is None
        else wrong_answer_cost,
        oos_share=ctx.settings.policy.oos_share if oos_share is None else oos_share,
        shape=Shape(shots, seed, not no_oos_train),
    )
    click.echo(json.dumps(result, ensure_ascii=False))


@click.command()
@click.option("--entries", default=200, show_default=True, help="Synthetic KB entries (5 questions each).")
@click.option("--messages", default=500, show_default=True, help="Messages to push through the engine.")
@click.option("--concurrency", default=20, show_default=True, help="Concurrent conversations.")
@click.option("--search-only", is_flag=True, help="Only time the vector search over random unit vectors.")
@click.option("--database", "database_url", default=None, help="Database URL (default: a temp SQLite file).")
@pass_context
def bench(
    ctx: CommandContext,
    entries: int,
    messages: int,
    concurrency: int,
    search_only: bool,
    database_url: str | None,
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
