"""`supportbot kb misses`: the questions the bot failed on, grouped, for content editors."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from bot.app import SupportBot
from bot.content.misses import collect_misses, write_csv
from bot.quality.evaluation import load_csv
from bot.storage.models import utcnow
from tests.support.channel import incoming

WEATHER = "What's the weather going to be like in Paris tomorrow?"


async def test_fallbacks_and_disliked_answers_are_listed_most_frequent_first(
    bot: SupportBot, tmp_path
) -> None:
    answered = await bot.receive(incoming("Jak długo trwa dostawa?", customer="a"))
    assert answered.decision is not None and answered.decision.kind == "answer"
    for customer, text in (
        ("a", WEATHER),
        ("b", WEATHER.upper()),
        ("c", "  what's the weather going to be like in paris tomorrow?"),
    ):
        missed = await bot.receive(incoming(text, customer=customer))
        assert missed.decision is not None and missed.decision.kind == "fallback"
    await bot.receive(incoming("I want to talk to a human", customer="d"))  # not a miss: a request
    waiting = await bot.receive(incoming(WEATHER, customer="d"))
    assert waiting.decision is not None  # decided (a "cancel" would go back to the bot), but for a person
    await bot.receive(incoming("", customer="e", attachments=()))  # nothing to learn from
    # customer a presses 👎 under the delivery answer
    await bot.receive(incoming(customer="a", payload="fb:down:delivery_time"))

    misses = await collect_misses(bot.database, utcnow() - timedelta(days=1))
    assert [(m.count, m.kind) for m in misses] == [(3, "fallback"), (1, "disliked")]
    weather, disliked = misses
    assert weather.text == WEATHER and weather.reason in ("low_confidence", "out_of_scope")
    assert disliked.text == "Jak długo trwa dostawa?" and disliked.bot_entry == "delivery_time"
    assert disliked.language == "pl"
    assert await collect_misses(bot.database, utcnow() + timedelta(minutes=1)) == []

    # the CSV, once its intent column is filled in, is an eval file
    out = io.StringIO()
    write_csv(misses, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["count"] for r in rows] == ["3", "1"] and all(r["intent"] == "" for r in rows)
    rows[0]["intent"], rows[1]["intent"] = "oos", "delivery_time"
    labelled = tmp_path / "labelled.csv"
    with labelled.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    examples = load_csv(labelled, "oos")
    assert [(e.text, e.intent, e.lang) for e in examples][1] == (
        "Jak długo trwa dostawa?",
        "delivery_time",
        "pl",
    )
