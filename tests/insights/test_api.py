"""The supervisors' insights API over real HTTP: the misses as JSON, and turning a miss into content
that the running bot reloads and answers with."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.nlu.policy import Decision
from bot.storage.database import Database
from bot.storage.models import Event, Message
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, desk_of, http_client, make_agent, wait_for
from tests.support.paths import REPO
from tests.support.server import LiveServer

WEATHER = "What's the weather going to be like in Paris tomorrow?"
STUDENT = "Is there a student discount?"  # the demo KB is unsure: promo_code or loyalty_club


def closest(decision: Decision) -> tuple[str | None, float]:
    """The entry a miss is shown with: the one decided on, else the best KB candidate the bot stored."""
    if decision.label is not None:
        return decision.label, round(decision.score, 4)
    best = next((c for c in decision.candidates[:5] if c.kind == "kb"), None)
    return (best.label, round(best.score, 4)) if best else (None, round(decision.score, 4))


async def ask(bot: SupportBot, text: str, customer: str, kind: str) -> Decision:
    result = await bot.receive(incoming(text, customer=customer))
    assert result.decision is not None and result.decision.kind == kind, result.decision
    return result.decision


async def last_seen(bot: SupportBot, text: str) -> str:
    async with bot.database.session() as session:
        rows = await session.execute(select(Message.created_at).where(Message.text == text))
        return max(rows.scalars()).isoformat(timespec="seconds").replace("+00:00", "") + "+00:00"


def line_after(text: str, marker: str, start: str) -> int:
    """The number of the first line starting with `start` after the line `marker`."""
    lines = text.splitlines()
    after = lines.index(marker)
    return next(i for i, line in enumerate(lines[after:], after + 1) if line.startswith(start))


async def test_misses_are_listed_for_supervisors(bot: SupportBot) -> None:
    await make_agent(bot.database, "anna")
    await make_agent(bot.database, "sup", role="supervisor")
    liked = await ask(bot, "Jak długo trwa dostawa?", "a", "answer")
    await bot.receive(incoming(customer="a", payload="fb:down:delivery_time"))
    await ask(bot, WEATHER, "b", "fallback")
    await ask(bot, WEATHER.upper(), "c", "fallback")
    weather = await ask(bot, f"  {WEATHER.lower()}", "d", "fallback")
    await ask(bot, STUDENT, "e", "clarify")
    student = await ask(bot, STUDENT, "f", "clarify")
    await ask(bot, "I want to talk to a human", "g", "handoff")
    await bot.receive(incoming(WEATHER, customer="g"))  # written to a person: not the bot's miss
    await desk_of(bot).drain()

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, sup = await Api.login(client, "anna"), await Api.login(client, "sup")
        for caller, status in ((Api(client), 401), (anna, 403)):
            assert (await caller.call("GET", "/misses")).status_code == status
        for params in ({"days": 0}, {"limit": 0}, {"days": "week"}):
            assert (await sup.call("GET", "/misses", params=params)).status_code == 422
        found: dict[str, Any] = await sup.ok("GET", "/misses", params={"days": 7})
        top = await sup.ok("GET", "/misses", params={"days": 7, "limit": 1})

    assert found["days"] == 7 and found["since"] < found["until"]
    entry, score = closest(weather)
    assert found["misses"] == [
        {
            "text": WEATHER,
            "count": 3,
            "kind": "fallback",
            "kinds": ["fallback"],
            "reason": weather.reason,
            "closest_entry": entry,
            "score": score,
            "language": "en",
            "last_seen": await last_seen(bot, f"  {WEATHER.lower()}"),
            "handled": None,
        },
        {
            "text": STUDENT,
            "count": 2,
            "kind": "clarify",
            "kinds": ["clarify"],
            "reason": student.reason,
            "closest_entry": "promo_code",
            "score": round(student.score, 4),
            "language": "en",
            "last_seen": await last_seen(bot, STUDENT),
            "handled": None,
        },
        {
            "text": "Jak długo trwa dostawa?",
            "count": 1,
            "kind": "disliked",
            "kinds": ["disliked"],
            "reason": "feedback",
            "closest_entry": "delivery_time",
            "score": round(liked.score, 4),
            "language": "pl",
            "last_seen": await last_seen(bot, "Jak długo trwa dostawa?"),
            "handled": None,
        },
    ]
    assert top["misses"] == found["misses"][:1]


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
    tmp_path: Path,
) -> AsyncIterator[SupportBot]:
    """The demo content copied to tmp_path, served as `supportbot run` serves it (with the file watcher)."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    settings = make_settings(kb={"path": str(tmp_path / "kb")}, intents={"path": str(tmp_path / "intents")})
    instance = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await instance.start(background=True, progress=False)
    yield instance
    await instance.close()


async def test_a_miss_becomes_a_question_the_bot_then_answers(
    running_bot: SupportBot, tmp_path: Path
) -> None:
    bot = running_bot
    await make_agent(bot.database, "anna")
    await make_agent(bot.database, "sup", role="supervisor")
    await ask(bot, STUDENT, "a", "clarify")
    await ask(bot, WEATHER, "b", "fallback")
    payment, oos = tmp_path / "kb" / "payment.yaml", tmp_path / "intents" / "out_of_scope.yml"
    kb_before, oos_before = payment.read_text(encoding="utf-8"), oos.read_text(encoding="utf-8")
    files_before = sorted(p.name for p in [*payment.parent.iterdir(), *oos.parent.iterdir()])
    question = "/kb/entries/promo_code/questions"

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, sup = await Api.login(client, "anna"), await Api.login(client, "sup")
        for caller, status in ((Api(client), 401), (anna, 403)):
            assert (await caller.call("GET", "/kb/entries")).status_code == status
            assert (await caller.call("POST", question, json={"text": STUDENT})).status_code == status
            assert (
                await caller.call("POST", "/intents/oos/examples", json={"text": WEATHER})
            ).status_code == status
        entries = {e["id"]: e for e in (await sup.ok("GET", "/kb/entries"))["entries"]}
        assert entries["promo_code"]["file"] == str(payment) and entries["promo_code"]["title"] == (
            "How do I use a promo code?"
        )
        [weather, student] = (await sup.ok("GET", "/misses"))["misses"]  # once each: the latest first
        assert (weather["text"], student["text"], student["closest_entry"]) == (
            WEATHER,
            STUDENT,
            "promo_code",
        )

        # the question joins promo_code's English list: one line changes, the rest stays byte for byte
        added = await sup.ok("POST", question, json={"text": student["text"], "language": "en"})
        english = line_after(kb_before, "- id: promo_code", "    en: [")
        assert added == {
            "entry": "promo_code",
            "language": "en",
            "text": STUDENT,
            "file": str(payment),
            "line": english,
            "applied": True,  # in service when answered (201)
            "status": "in service",
        }
        lines = kb_before.splitlines(keepends=True)
        lines[english - 1] = lines[english - 1].replace('"]\n', f'", "{STUDENT}"]\n')
        assert payment.read_text(encoding="utf-8") == "".join(lines)
        kb_after = payment.read_bytes()
        again = await sup.call("POST", question, json={"text": STUDENT.lower()})
        assert again.status_code == 409 and again.json()["detail"]["code"] == "already_present"
        taken = await sup.call("POST", question, json={"text": "How long does delivery take?"})
        assert taken.status_code == 422
        assert "is also under entry 'delivery_time'" in taken.json()["detail"]["message"]
        unknown = await sup.call("POST", "/kb/entries/parking/questions", json={"text": "Parking?"})
        assert unknown.status_code == 404
        assert payment.read_bytes() == kb_after

        # the weather question becomes an out-of-scope example: one line after the last one
        added_oos = await sup.ok("POST", "/intents/oos/examples", json={"text": WEATHER})
        last_example = max(
            i for i, line in enumerate(oos_before.splitlines(), 1) if line.startswith("    - ")
        )
        assert added_oos == {
            "intent": "oos",
            "text": WEATHER,
            "file": str(oos),
            "line": last_example + 1,
            "applied": True,
            "status": "in service",
        }
        lines = oos_before.splitlines(keepends=True)
        lines.insert(last_example, f"    - {WEATHER}\n")
        assert oos.read_text(encoding="utf-8") == "".join(lines)
        oos_after = oos.read_bytes()
        assert (
            await sup.call("POST", "/intents/oos/examples", json={"text": WEATHER.upper()})
        ).status_code == 409
        for refused, cause in (("hello", "also under 'greet'"), ("weather in [Paris](city)", "read back")):
            response = await sup.call("POST", "/intents/oos/examples", json={"text": refused})
            assert response.status_code == 422 and cause in response.json()["detail"]["message"]
        assert oos.read_bytes() == oos_after
        assert sorted(p.name for p in [*payment.parent.iterdir(), *oos.parent.iterdir()]) == files_before

        # both misses are marked handled: what was done, by whom
        handled = {m["text"]: m["handled"] for m in (await sup.ok("GET", "/misses"))["misses"]}
        assert {text: (h["action"], h["entry"], h["by"]) for text, h in handled.items()} == {
            STUDENT: ("question", "promo_code", "sup"),
            WEATHER: ("out_of_scope", None, "sup"),
        }

        # the running bot reloads the files by itself and now answers the question with promo_code
        def reloaded() -> bool:
            entry = bot.matcher().kb.get("promo_code")
            return entry is not None and STUDENT in entry.questions["en"]

        await wait_for(reloaded, what="the file watcher's reload")
        answer = await ask(bot, STUDENT, "c", "answer")
        assert answer.label == "promo_code"
        await bot.receive(incoming(customer="c", payload="fb:down:promo_code"))
        assert (await ask(bot, WEATHER, "d", "fallback")).reason == "out_of_scope"
        # answered now, but 👎: to look at again; declined as out of scope, as it was told: still handled
        again = (await sup.ok("GET", "/misses"))["misses"]
        assert [(m["text"], m["count"], m["kinds"]) for m in again] == [
            (STUDENT, 2, ["clarify", "disliked"]),
            (WEATHER, 2, ["fallback"]),
        ]
        assert again[0]["handled"] is None and again[1]["handled"]["action"] == "out_of_scope"

    async with bot.database.session() as session:
        events = (
            await session.execute(select(Event).where(Event.kind.like("%_added")).order_by(Event.id))
        ).scalars()
        audit = [(e.kind, e.actor, e.data) for e in events]
    assert audit == [
        (
            "kb_question_added",
            "agent:sup",
            {"text": STUDENT, "entry": "promo_code", "language": "en", "file": str(payment), "line": english},
        ),
        ("oos_example_added", "agent:sup", {"text": WEATHER, "file": str(oos), "line": added_oos["line"]}),
    ]
