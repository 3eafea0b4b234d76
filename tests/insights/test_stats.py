"""The support lead's numbers (`GET /api/v1/stats`, `supportbot stats`) from real conversations."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from bot.app import SupportBot
from bot.insights.stats import percentile
from bot.messages import IncomingMessage
from bot.states import State
from bot.storage.models import Conversation, Event, Message, utcnow
from bot.web.app import create_app
from tests.support.channel import incoming
from tests.support.cli import SUPPORTBOT, write_config
from tests.support.handoff import Api, desk_of, http_client, make_agent
from tests.support.server import LiveServer


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([90.0, 30.0], 0.5) == 60.0
    assert percentile([30.0, 90.0], 0.9) == 84.0
    assert percentile([float(v) for v in range(1, 11)], 0.9) == 9.1


async def _kind(bot: SupportBot, message: IncomingMessage) -> tuple[int, str | None, str]:
    result = await bot.receive(message)
    assert result.conversation_id is not None
    decision = result.decision
    return result.conversation_id, decision.public_kind if decision else None, result.state


async def test_stats_count_what_happened(bot: SupportBot, tmp_path: Path, index_cache: Path) -> None:
    desk = desk_of(bot)
    base = utcnow() - timedelta(hours=1)  # the desk's clock (handoff, first reply), an hour ago
    now = [base]
    desk.clock = lambda: now[0]
    await make_agent(bot.database, "anna", name="Anna")
    await make_agent(bot.database, "ben", name="Ben")
    await make_agent(bot.database, "sup", role="supervisor")

    # the bot's side: answers (with a 👍 and a 👎), a miss, two misses in a row, intents
    a, kind, _ = await _kind(bot, incoming("How can I pay for my order?", customer="a"))
    assert kind == "answer"
    assert (await _kind(bot, incoming(payload="fb:up:payment_methods", customer="a")))[1] is None
    assert (await _kind(bot, incoming("How can I pay for my order?", customer="b")))[1] == "answer"
    await bot.receive(incoming(payload="fb:down:payment_methods", customer="b"))
    assert (await _kind(bot, incoming("What's the weather like in Paris tomorrow?", customer="c")))[1] == (
        "fallback"
    )
    c, kind, state = await _kind(bot, incoming("Can you write me a poem about the sea?", customer="c"))
    assert kind == "handoff" and state == State.WAITING  # repeated_misses
    assert (await _kind(bot, incoming("you are the best, amazing support", customer="g")))[1] == "answer"
    assert (await _kind(bot, incoming("Jak długo trwa dostawa?", customer="h")))[1] == "answer"
    web = IncomingMessage(
        channel="webchat", chat_id="v1", customer_id="v1", text="How long does delivery take?"
    )
    assert (await _kind(bot, web))[1] == "answer"
    # handoffs: a complaint, two requests for a person
    d, kind, _ = await _kind(bot, incoming("this is terrible service, I'm very disappointed", customer="d"))
    assert kind == "handoff"
    e, kind, _ = await _kind(bot, incoming("I want to talk to a human", customer="e"))
    assert kind == "handoff"
    i, kind, _ = await _kind(bot, incoming("operator please, I want a person", customer="i"))
    assert kind == "handoff"
    await desk.drain()

    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        anna, ben = await Api.login(client, "anna"), await Api.login(client, "ben")
        sup, anonymous = await Api.login(client, "sup"), Api(client)
        await anna.ok("POST", f"/conversations/{d}/accept")
        await ben.ok("POST", f"/conversations/{e}/accept")
        now[0] = base + timedelta(seconds=30)
        await anna.ok("POST", f"/conversations/{d}/messages", json={"text": "Sorry! Anna here."})
        now[0] = base + timedelta(seconds=90)
        await ben.ok("POST", f"/conversations/{e}/messages", json={"text": "Ben here, how can I help?"})
        # the customer writes to the agent: a customer message the bot does not decide on
        assert (await _kind(bot, incoming("thanks", customer="d")))[2] == State.WITH_AGENT
        await anna.ok("POST", f"/conversations/{d}/resolve", json={"reason": "refunded"})
        breached = await desk.timers.flag_sla(now=base + timedelta(seconds=300))  # c and i: no agent wrote
        assert sorted(breached) == sorted([c, i])

        for caller, status in ((anonymous, 401), (anna, 403)):
            assert (await caller.call("GET", "/stats")).status_code == status
        assert (await sup.call("GET", "/stats", params={"days": 0})).status_code == 422
        stats: dict[str, Any] = await sup.ok("GET", "/stats", params={"days": 7})

    assert stats["days"] == 7
    assert stats["conversations"] == 9
    assert stats["by_channel"] == {"test": 8, "webchat": 1}
    assert stats["by_language"] == {"en": 8, "pl": 1}
    # 13 customer messages: 2 buttons and 1 for the agent carry no decision
    assert stats["customer_messages"] == 13
    decisions = stats["decisions"]
    assert decisions["total"] == 10
    assert decisions["counts"] == {"answer": 5, "clarify": 0, "fallback": 1, "handoff": 4}
    assert decisions["rates"] == {"answer": 0.5, "clarify": 0.0, "fallback": 0.1, "handoff": 0.4}
    assert stats["intents"] == {"complaint": 1, "compliment": 1, "human_request": 2}
    assert (stats["complaints"], stats["compliments"]) == (1, 1)
    assert stats["handoffs"] == {
        "total": 4,
        "conversations": 4,
        "reasons": {"human_request": 2, "repeated_misses": 1, "complaint": 1},
    }
    assert stats["wait"] == {"answered": 2, "unanswered": 2, "median_seconds": 60.0, "p90_seconds": 84.0}
    assert stats["sla_breaches"] == 2
    assert stats["resolved"] == 1
    assert stats["feedback"] == {"up": 1, "down": 1, "up_share": 0.5}
    assert stats["csat"]["count"] == 0 and stats["csat"]["average"] is None
    assert [(x["login"], x["resolved"]) for x in stats["agents"]] == [("anna", 1)]

    # the window: move customer a's conversation, messages and events 10 days back
    async with bot.database.session() as session:
        old = utcnow() - timedelta(days=10)
        await session.execute(update(Conversation).where(Conversation.id == a).values(created_at=old))
        await session.execute(update(Message).where(Message.conversation_id == a).values(created_at=old))
        await session.execute(update(Event).where(Event.conversation_id == a).values(created_at=old))
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        sup = await Api.login(client, "sup")
        week: dict[str, Any] = await sup.ok("GET", "/stats", params={"days": 7})
        month: dict[str, Any] = await sup.ok("GET", "/stats", params={"days": 30})
    assert (week["conversations"], week["customer_messages"], week["decisions"]["total"]) == (8, 11, 9)
    assert week["feedback"] == {"up": 0, "down": 1, "up_share": 0.0}
    assert {k: v for k, v in month.items() if k not in ("since", "until", "days")} == {
        k: v for k, v in stats.items() if k not in ("since", "until", "days")
    }

    # `supportbot stats` prints the same numbers (on SQLite: the CLI reads the same file)
    if bot.database.is_sqlite:
        config = write_config(tmp_path, index_cache)
        config.write_text(
            config.read_text(encoding="utf-8").replace("sqlite+aiosqlite:///var/bot.db", bot.database.url),
            encoding="utf-8",
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [SUPPORTBOT, "--config", str(config), "stats", "--days", "7"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        printed = json.loads(done.stdout)
        assert {k: v for k, v in printed.items() if k not in ("since", "until")} == {
            k: v for k, v in week.items() if k not in ("since", "until")
        }
