"""`supportbot doctor` against real services: the database, Redis, the stand-in Bot API and Graph API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli.doctor import examine
from bot.config import load_settings
from bot.storage.database import Database
from tests.support.cli import SUPPORTBOT
from tests.support.graph_api import GraphApiStub
from tests.support.server import LiveServer, free_port
from tests.support.services import REDIS_URL
from tests.support.telegram import SECRET, TOKEN
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID

WEBHOOK_URL = "https://support.example/webhooks/telegram"


@dataclass
class Platforms:
    telegram: TelegramApiStub
    graph_url: str


@pytest.fixture
async def platforms() -> AsyncIterator[Platforms]:
    telegram = TelegramApiStub(TOKEN)
    await telegram.start(free_port())
    graph = GraphApiStub(ACCESS_TOKEN)
    async with LiveServer(graph.app) as server:
        yield Platforms(telegram, f"{server.url}/v21.0")
    await telegram.close()


def write_config(
    folder: Path,
    platforms: Platforms,
    *,
    token: str = TOKEN,
    access_token: str = ACCESS_TOKEN,
    redis: str | None = None,
) -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{folder}/bot.db'}}\n"
        + (f"redis: {{url: '{redis}'}}\n" if redis else "")
        + "channels:\n"
        f"  telegram: {{token: '{token}', api_base: '{platforms.telegram.url}', mode: webhook, "
        f"webhook_url: '{WEBHOOK_URL}', webhook_secret: '{SECRET}'}}\n"
        f"  whatsapp: {{access_token: '{access_token}', phone_number_id: '{PHONE_NUMBER_ID}', "
        f"app_secret: '{APP_SECRET}', verify_token: v, graph_api_base: '{platforms.graph_url}'}}\n",
        encoding="utf-8",
    )
    return config


async def doctor(config: Path) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        SUPPORTBOT,
        "--config",
        str(config),
        "doctor",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, output.decode().splitlines()


@pytest.mark.redis
async def test_a_sound_deployment_passes_every_check(tmp_path: Path, platforms: Platforms) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    await database.migrate()
    await database.close()
    platforms.telegram.webhook = {"url": WEBHOOK_URL}  # as supportbot run leaves it
    code, lines = await doctor(write_config(tmp_path, platforms, redis=REDIS_URL))
    assert code == 0, lines
    assert any(line.startswith("ok   database:") and "newest revision" in line for line in lines), lines
    assert any(line.startswith("ok   redis:") for line in lines), lines
    assert any(line.startswith("ok   telegram:") and "@shop_support_bot" in line for line in lines), lines
    assert f"ok   telegram webhook: {WEBHOOK_URL} (0 updates pending)" in lines, lines
    assert any(line.startswith("ok   whatsapp:") and "+48 500 000 000" in line for line in lines), lines
    assert lines[-1] == "all checks passed"
    assert [c.method for c in platforms.telegram.calls] == ["getme", "getwebhookinfo"]  # nothing changed


async def test_each_problem_is_one_clear_line_and_the_exit_code_says_so(
    tmp_path: Path, platforms: Platforms
) -> None:
    # no database yet, a wrong bot token, a wrong WhatsApp token, Redis where nothing listens
    config = write_config(
        tmp_path,
        platforms,
        token="7000000001:wrong",
        access_token="expired",
        redis=f"redis://127.0.0.1:{free_port()}/0",
    )
    code, lines = await doctor(config)
    assert code == 1, lines
    failed = {
        line.split(":", 1)[0].removeprefix("FAIL ").strip() for line in lines if line.startswith("FAIL")
    }
    assert failed == {"database", "redis", "telegram", "whatsapp"}, lines
    assert any("no database file yet" in line for line in lines), lines
    assert any(
        "getMe" in line and "401 Unauthorized" in line and "channels.telegram.token" in line for line in lines
    )
    assert all("7000000001:wrong" not in line for line in lines)  # the token is never printed
    assert lines[-1] == "4 problem(s) found"


async def test_a_webhook_that_is_not_ours_fails_its_check(tmp_path: Path, platforms: Platforms) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    await database.migrate()
    await database.close()
    platforms.telegram.webhook = {"url": "https://old.example/hook"}  # someone else's, or an old deploy's
    findings = await examine(load_settings(write_config(tmp_path, platforms)))
    [problem] = [finding for finding in findings if finding.status == "FAIL"]
    assert problem.name == "telegram webhook" and "Telegram has 'https://old.example/hook'" in problem.detail
