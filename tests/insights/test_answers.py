"""How the bot's answers land, per KB entry, over real HTTP (SQLite and PostgreSQL): the counts, the
handoffs after an answer, the questions behind the latest 👎, the order, and both tables as CSV files."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bot.app import SupportBot
from bot.quality.evaluation import load_csv
from bot.storage.models import Event, Message
from bot.web.app import create_app
from tests.support.channel import incoming
from tests.support.handoff import Api, desk_of, http_client, make_agent
from tests.support.server import LiveServer

STUDENT = "Is there a student discount?"  # the demo KB is unsure: a clarifying question
FORMULA_MISS = '=HYPERLINK("http://x.example","weather in Paris")'  # an honest fallback
BOM = b"\xef\xbb\xbf"


async def say(bot: SupportBot, customer: str, text: str = "", payload: str | None = None) -> str | None:
    result = await bot.receive(incoming(text, customer=customer, payload=payload))
    decision = result.decision
    return f"{decision.kind}:{decision.label}" if decision is not None else None


async def down_votes(bot: SupportBot, entry: str) -> list[str]:
    """When each 👎 for `entry` came, newest first, as the API writes it."""
    async with bot.database.session() as session:
        events = await session.execute(
            select(Event).where(Event.kind == "answer_feedback").order_by(Event.id.desc())
        )
        stamps = [e.created_at for e in events.scalars() if e.data == {"vote": "down", "entry": entry}]
    return [s.isoformat(timespec="seconds").replace("+00:00", "") + "+00:00" for s in stamps]


async def age_conversation(bot: SupportBot, customer: str, by: timedelta) -> None:
    """Move everything in `customer`'s conversation `by` back in time."""
    async with bot.database.session() as session:
        conversation_id = (
            await session.execute(
                select(Message.conversation_id).where(Message.dedupe_key.like(f"test:{customer}:%")).limit(1)
            )
        ).scalar_one()
        for model in (Message, Event):
            rows = await session.execute(select(model).where(model.conversation_id == conversation_id))
            for item in rows.scalars():
                item.created_at = item.created_at - by


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(BOM)  # so Excel reads UTF-8, not the local code page
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def filename(response: httpx.Response) -> str:
    found = re.fullmatch(r'attachment; filename="([^"]+)"', response.headers["content-disposition"])
    assert found is not None, response.headers["content-disposition"]
    return found.group(1)


async def test_answers_per_entry_with_votes_handoffs_and_csv(bot: SupportBot, tmp_path: Path) -> None:
    await make_agent(bot.database, "anna")
    await make_agent(bot.database, "sup", role="supervisor")
    delivery = "answer:delivery_time"
    # a: delivery answered, 👎, then "talk to a person": a handoff after the answer
    assert await say(bot, "a", "-how long does delivery take") == delivery
    await say(bot, "a", payload="fb:down:delivery_time")
    await say(bot, "a", payload="human")
    assert await say(bot, "a", "How long does delivery take?") == delivery  # to the person: not an answer
    # b, c, d: 👎 in Polish, Russian, and a question a spreadsheet would run as a formula
    for customer, text in (
        ("b", "Jak długo trwa dostawa?"),
        ("c", "Сколько идёт доставка?"),
        ("d", "=How long does delivery take?"),
    ):
        assert await say(bot, customer, text) == delivery
        await say(bot, customer, payload="fb:down:delivery_time")
    # e: 👍
    assert await say(bot, "e", "How long does delivery take?") == delivery
    await say(bot, "e", payload="fb:up:delivery_time")
    # f: payment, then delivery, then a person: the handoff follows the delivery answer, not the payment one
    assert await say(bot, "f", "How can I pay for my order?") == "answer:payment_methods"
    assert await say(bot, "f", "How long does delivery take?") == delivery
    assert await say(bot, "f", "I want to talk to a human") == "handoff:human_request"
    # g: a clarifying question, the customer picks promo_code, 👎, a person
    assert await say(bot, "g", STUDENT) == "clarify:promo_code"
    await say(bot, "g", payload="entry:promo_code")
    await say(bot, "g", payload="fb:down:promo_code")
    await say(bot, "g", payload="human")
    # h: payment, 👎, a person; ten days ago
    assert await say(bot, "h", "How can I pay for my order?") == "answer:payment_methods"
    await say(bot, "h", payload="fb:down:payment_methods")
    await say(bot, "h", payload="human")
    # i: a fallback that looks like a formula, and a 👎 naming no entry (a forged button)
    assert await say(bot, "i", FORMULA_MISS) == "fallback:None"
    await say(bot, "i", payload="fb:down:no_such_entry")
    await desk_of(bot).drain()
    delivery_downs = await down_votes(bot, "delivery_time")
    [promo_down] = await down_votes(bot, "promo_code")
    await age_conversation(bot, "h", timedelta(days=10))
    [payment_down] = await down_votes(bot, "payment_methods")
    kb = [entry.id for entry in bot.matcher().kb.entries]

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, sup = await Api.login(client, "anna"), await Api.login(client, "sup")
        for path in ("/answers", "/answers.csv", "/misses.csv"):
            refused = await Api(client).call("GET", path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["detail"]["code"] == "unauthorized"
            forbidden = await anna.call("GET", path)
            assert forbidden.status_code == 403 and forbidden.json()["detail"]["code"] == "forbidden"
            for days in (0, 367, "week"):
                invalid = await sup.call("GET", path, params={"days": days})
                assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["query", "days"]
        month: dict[str, Any] = await sup.ok("GET", "/answers", params={"days": 30})
        week: dict[str, Any] = await sup.ok("GET", "/answers", params={"days": 7})
        answers_csv = await sup.call("GET", "/answers.csv", params={"days": 30})
        misses_csv = await sup.call("GET", "/misses.csv", params={"days": 30})

    def row(entry: str, title: str, answered: int, up: int, down: int, handed_off: int, **rest: Any) -> Any:
        return {
            "entry": entry,
            "title": title,
            "in_service": True,
            "answered": answered,
            "up": up,
            "down": down,
            "down_share": rest.get("down_share"),
            "handed_off": handed_off,
            "handed_off_share": rest.get("handed_off_share"),
            "recent_down": rest.get("recent_down", []),
        }

    delivery_row = row(
        "delivery_time",
        "How long does delivery take?",
        answered=6,
        up=1,
        down=4,
        handed_off=2,  # a's and f's
        down_share=0.8,
        handed_off_share=0.3333,
        recent_down=[
            {"question": "=How long does delivery take?", "at": delivery_downs[0]},
            {"question": "Сколько идёт доставка?", "at": delivery_downs[1]},
            {"question": "Jak długo trwa dostawa?", "at": delivery_downs[2]},
        ],
    )
    promo_row = row(
        "promo_code",
        "How do I use a promo code?",
        answered=1,
        up=0,
        down=1,
        handed_off=1,
        down_share=1.0,
        handed_off_share=1.0,
        recent_down=[{"question": STUDENT, "at": promo_down}],
    )
    payment_title = "How can I pay for my order?"
    assert month["days"] == 30 and month["since"] < month["until"]
    # worst first: the most 👎, then the highest handed-off share (promo 1/1 before payment 1/2)
    assert month["answers"][:3] == [
        delivery_row,
        promo_row,
        row(
            "payment_methods",
            payment_title,
            answered=2,
            up=0,
            down=1,
            handed_off=1,
            down_share=1.0,
            handed_off_share=0.5,
            recent_down=[{"question": payment_title, "at": payment_down}],
        ),
    ]
    # every entry in service is listed, the unused ones with zeros, by id; the forged id is not
    unused = month["answers"][3:]
    assert sorted(r["entry"] for r in month["answers"]) == sorted(kb)
    assert [r["entry"] for r in unused] == sorted(r["entry"] for r in unused)
    assert all(
        (r["answered"], r["up"], r["down"], r["down_share"], r["recent_down"]) == (0, 0, 0, None, [])
        for r in unused
    )
    # a week back, h's conversation (ten days old) is out of the window
    assert week["answers"][:3] == [
        delivery_row,
        promo_row,
        row("payment_methods", payment_title, answered=1, up=0, down=0, handed_off=0, handed_off_share=0.0),
    ]

    rows = read_csv(answers_csv)
    assert re.fullmatch(r"answers_30d_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", filename(answers_csv))
    assert list(rows[0]) == [
        "entry", "title", "in_service", "answered", "up", "down", "down_share", "handed_off",
        "handed_off_share", "down_question_1", "down_question_2", "down_question_3",
    ]  # fmt: skip
    assert rows[0] == {
        "entry": "delivery_time",
        "title": "How long does delivery take?",
        "in_service": "True",
        "answered": "6",
        "up": "1",
        "down": "4",
        "down_share": "0.8",
        "handed_off": "2",
        "handed_off_share": "0.3333",
        "down_question_1": "'=How long does delivery take?",  # shown as text, never run as a formula
        "down_question_2": "Сколько идёт доставка?",
        "down_question_3": "Jak długo trwa dostawa?",
    }
    assert [r["entry"] for r in rows] == [r["entry"] for r in month["answers"]]
    assert rows[3]["down_share"] == "" and rows[3]["down_question_1"] == ""

    misses = read_csv(misses_csv)
    assert re.fullmatch(r"misses_30d_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", filename(misses_csv))
    assert sorted(m["text"] for m in misses) == sorted(
        [
            f"'{FORMULA_MISS}",
            "'-how long does delivery take",
            "Jak długo trwa dostawa?",
            "Сколько идёт доставка?",
            "'=How long does delivery take?",
            STUDENT,  # asked to clarify, then 👎
            payment_title,
        ]
    )
    # filled in and saved by a spreadsheet (which keeps the byte-order mark), it is an eval file
    for miss in misses:
        miss["intent"] = "oos" if "HYPERLINK" in miss["text"] else "delivery_time"
    labelled = tmp_path / "labelled.csv"
    with labelled.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(misses[0]))
        writer.writeheader()
        writer.writerows(misses)
    assert {e.text for e in load_csv(labelled, "oos")} == {m["text"] for m in misses}
