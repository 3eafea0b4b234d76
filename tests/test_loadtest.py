"""The Locust load test (loadtest/locustfile.py) runs headless for a few seconds against a real server.

So the locustfile never rots: every user class sends (web chat visitors with handoffs, agents working the
queue through the API, signed Telegram and WhatsApp webhooks), nothing fails, and what it sent was stored
and answered once. The real runs are benchmarks (docs/load-tests.md), not tests.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from bot.adapters.telegram import TelegramChannel
from bot.adapters.webchat import WebchatChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Conversation, Message
from bot.web.app import create_app
from tests.support.graph_api import GraphApiStub
from tests.support.handoff import PASSWORD, make_agent
from tests.support.paths import REPO
from tests.support.server import LiveServer, free_port
from tests.support.telegram import SECRET, TOKEN, telegram_settings
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import APP_SECRET, PHONE_NUMBER_ID, whatsapp_settings

LOCUST = str(Path(sys.executable).parent / "locust")
SECONDS = 8


async def test_the_locustfile_runs_every_user_class_without_a_failure(
    make_settings: Callable[..., Settings], tmp_path: Path, encoder: E5Encoder
) -> None:
    telegram_api = TelegramApiStub(TOKEN)
    await telegram_api.start(free_port())
    graph = GraphApiStub("test-access-token")
    async with LiveServer(graph.app) as graph_server:
        settings = make_settings(
            channels={
                "telegram": telegram_settings(
                    telegram_api.url,
                    mode="webhook",
                    webhook_url="https://support.example/webhooks/telegram",
                    webhook_secret=SECRET,
                ),
                "whatsapp": whatsapp_settings(f"{graph_server.url}/v21.0").model_dump(),
                # every Locust visitor comes from 127.0.0.1: no limit on new visitor ids per address
                "webchat": {"new_visitors_per_address_per_hour": 0},
            }
        )
        database = Database(settings.database_url)
        await database.migrate()
        for number in range(2):
            await make_agent(database, f"load{number}", capacity=3)
        channels = settings.channels
        bot = SupportBot(
            settings,
            channels=[
                WebchatChannel(channels.webchat),
                TelegramChannel(channels.telegram),
                WhatsAppChannel(channels.whatsapp),
            ],
            encoder=encoder,
            database=database,
        )
        try:
            async with LiveServer(create_app(bot)) as server:
                code, stats = await _locust(server.url, tmp_path)
                await asyncio.sleep(1.0)  # webhooks are answered after their 200: let the last ones finish
                async with database.session() as session:
                    inbound = Counter(
                        (
                            await session.execute(
                                select(Conversation.channel)
                                .join(Message, Message.conversation_id == Conversation.id)
                                .where(Message.direction == "in")
                            )
                        ).scalars()
                    )
                    customer_ids = (
                        await session.execute(
                            select(Message.conversation_id, Message.platform_message_id, func.count())
                            .where(Message.direction == "in", Message.platform_message_id.is_not(None))
                            .group_by(Message.conversation_id, Message.platform_message_id)
                            .having(func.count() > 1)
                        )
                    ).all()
        finally:
            await database.close()
            await telegram_api.close()
    assert code == 0, stats
    sent = ("webchat: question", "webchat: ask for a person", "agent: my conversations", "telegram: webhook")
    for name in (*sent, "whatsapp: webhook"):
        assert stats[name][0] > 0, f"{name} never sent: {stats}"
    assert stats["agent: go online"][0] == 2, stats
    assert all(failures == 0 for _, failures in stats.values()), stats
    assert inbound["webchat"] and inbound["telegram"] and inbound["whatsapp"], inbound
    assert customer_ids == []  # a message resent with its client_message_id was stored once
    assert len(graph.sends) > 0 and len(telegram_api.sent()) > 0  # the webhooks' customers were answered


async def _locust(url: str, folder: Path) -> tuple[int, dict[str, tuple[int, int]]]:
    """Run the locustfile headless; return its exit code and, per request name, (requests, failures)."""
    env = {
        **os.environ,
        "LOADTEST_AGENTS": f"load0:{PASSWORD},load1:{PASSWORD}",
        "LOADTEST_TELEGRAM_SECRET": SECRET,
        "LOADTEST_WHATSAPP_APP_SECRET": APP_SECRET,
        "LOADTEST_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "LOADTEST_THINK": "0.1,0.3",
        "LOADTEST_MESSAGES": "1",
    }
    process = await asyncio.create_subprocess_exec(
        LOCUST,
        "-f",
        str(REPO / "loadtest" / "locustfile.py"),
        "--headless",
        "--host",
        url,
        "--users",
        "8",
        "--spawn-rate",
        "8",
        "--run-time",
        f"{SECONDS}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(folder / "locust"),
        "--only-summary",
        "--fail-on-errors",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=SECONDS + 60)
    assert process.returncode is not None
    with (folder / "locust_stats.csv").open(encoding="utf-8") as file:
        stats = {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(file)
            if row["Name"] != "Aggregated"
        }
    if process.returncode != 0:
        stats["(locust output)"] = (0, 0)
        print(output.decode(errors="replace"))
    return process.returncode, stats
