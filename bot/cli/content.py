"""`supportbot kb`: check, calibrate, build and the misses of the knowledge base and intents."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.cli.context import CommandContext, on_database, pass_context


@click.group()
def kb() -> None:
    """Knowledge-base tools: check, calibrate, build, misses, suggest."""


@kb.command("check")
@click.option(
    "--no-similarity", is_flag=True, help="Skip the embedding check for entries that are too close."
)
@pass_context
def kb_check(ctx: CommandContext, no_similarity: bool) -> None:
    """Validate kb/ and intents/: YAML errors with file:line, duplicates, missing languages."""
    from bot.content.check import check_content, similarity_warnings

    report = check_content(ctx.settings)
    expected = ""
    if not report.problems and not no_similarity:
        found, expected = similarity_warnings(ctx.settings)
        report.warnings.extend(found)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s) found", err=True)
        sys.exit(1)
    click.echo(f"ok: {report.entries} KB entries, {report.intents} intents, {report.examples} examples")
    if expected:
        click.echo(f"expected live (calibration on this content): {expected}")


@kb.command("calibrate")
@click.option(
    "--wrong-answer-cost",
    type=click.FloatRange(min=0.0, min_open=True),
    help="How much worse a wrong answer is than none (default: policy.wrong_answer_cost, 2).",
)
@pass_context
def kb_calibrate(ctx: CommandContext, wrong_answer_cost: float | None) -> None:
    """Pick thresholds by cross-validation over the KB and intents plus the generic out-of-scope set.

    Degenerate results ("refuse all", "answer all") are replaced by the model's defaults, with a warning;
    a KB of mostly thin entries (one or two questions each) gets thresholds anchored on the out-of-scope
    sets instead of searched ones (docs/quality.md).
    """
    from bot.nlu.matcher import Matcher
    from bot.nlu.thresholds import ANCHORED_EXPECTED

    settings = ctx.settings
    if settings.policy.calibration_file is None:
        raise click.UsageError("policy.calibration_file is empty in the config: nowhere to write")
    data = Matcher.load(settings, calibrate=False).calibrate(wrong_answer_cost)
    path = settings.resolve(settings.policy.calibration_file)
    for warning in data.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)
    expected = data["expected"]
    oos = expected["oos_recall"]
    if data.get("state") == "anchored":
        click.echo(f"expected live: {ANCHORED_EXPECTED}", err=True)
    else:
        click.echo(
            f"expected live: answers {expected['answer_rate']:.0%} of covered questions directly, "
            f"{expected['answer_precision']:.0%} of answers right, right entry answered or offered for "
            f"{expected['in_scope_accuracy']:.0%}, "
            + (
                "no out-of-scope evidence"
                if oos is None
                else f"declines {oos:.0%} of what it has no entry for"
            ),
            err=True,
        )
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
def kb_misses(ctx: CommandContext, days: int, limit: int, out: Path | None) -> None:
    """The questions the bot failed on (fallbacks, clarifications, 👎 answers), most frequent first, as CSV.

    Fill in the empty `intent` column (a KB entry id, or oos) and the file scores the bot with
    `supportbot eval --test`; its rows are what new KB questions and out-of-scope examples come from.
    """
    from datetime import timedelta

    from bot.content.misses import collect_misses, write_csv
    from bot.storage.models import utcnow

    misses = on_database(
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
def kb_build(ctx: CommandContext) -> None:
    """Embed the KB and intents and cache the search index (done at start-up too)."""
    from bot.nlu.matcher import Matcher

    matcher = Matcher.load(ctx.settings)
    click.echo(
        f"index ready: {len(matcher.index.items)} sentences, model {matcher.encoder.model_id}, "
        f"cache {ctx.settings.resolve(ctx.settings.embedding.cache_dir)}"
    )


@kb.command("suggest")
@click.option(
    "--days", type=click.IntRange(1, 366), help="How far back to read resolved conversations (learning.days)."
)
@click.option(
    "--measure",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instead: measure the thresholds on a CSV of labelled pairs (subject,lang,question,answer).",
)
@pass_context
def kb_suggest(ctx: CommandContext, days: int | None, measure: Path | None) -> None:
    """KB entries and question wordings suggested from agents' answers, as YAML (docs/listen-and-learn.md).

    Accept or dismiss them in the console's Insights tab or with POST /api/v1/suggestions/{id}/accept.
    """
    import yaml

    from bot.learning.review import collect
    from bot.nlu.matcher import Matcher

    settings = ctx.settings
    if measure is not None:
        from bot.learning.measure import measure_thresholds

        matcher = Matcher.load(settings, progress=False, calibrate=False)  # the encoder is what is measured
        measured = measure_thresholds(matcher, measure)
        click.echo(yaml.safe_dump(measured, allow_unicode=True, sort_keys=False), nl=False)
        return
    matcher = Matcher.load(settings, progress=False)
    found = on_database(settings, lambda database: collect(database, matcher, settings.learning, days))
    body = {"days": days or settings.learning.days, "suggestions": [s.as_dict() for s in found]}
    click.echo(yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=100), nl=False)
    click.echo(f"{len(found)} suggestion(s)", err=True)
