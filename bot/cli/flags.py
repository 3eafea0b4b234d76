"""`supportbot flags calibrate`: the strong-negative threshold of Code Red, measured on held-out examples."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from bot.cli.context import CommandContext, pass_context


@click.group()
def flags() -> None:
    """Code Red and Code Green: calibrate the strong-negative wording threshold."""


@flags.command("calibrate")
@click.option(
    "--heldout",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("eval/sentiment_heldout.yml"),
    show_default=True,
    help="Labelled held-out examples (Rasa NLU: strong_negative, calm), none of them in flags.sentiment_path.",
)
@click.option("--min-precision", type=click.FloatRange(0.5, 1.0), default=0.9, show_default=True)
@pass_context
def flags_calibrate(ctx: CommandContext, heldout: Path, min_precision: float) -> None:
    """Pick flags.negative_threshold on half the held-out examples; print it with precision and recall."""
    from bot.nlu.matcher import Matcher
    from bot.nlu.sentiment import calibrate

    settings = ctx.settings
    matcher = Matcher.load(settings, progress=False, calibrate=False)
    if matcher.sentiment is None:
        raise click.UsageError("flags.enabled is false: there is nothing to calibrate")
    result = calibrate(
        matcher.sentiment, heldout, lambda text: matcher.embed_message(matcher.clean(text)), min_precision
    )
    click.echo(
        yaml.safe_dump(
            {
                "negative_threshold": result.threshold,
                "model_id": matcher.encoder.model_id,
                "min_precision": min_precision,
                "calibration_half": result.calibration,
                "test_half": result.test,
                "examples": result.counts,
                "set_in": "config.yaml flags.negative_threshold",
            },
            sort_keys=False,
        ),
        nl=False,
    )
