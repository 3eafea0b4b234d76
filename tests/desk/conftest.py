"""The desk tests' rig: `supportbot run` with Telegram (polling), WhatsApp and the desk, over real HTTP."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from bot.adapters.telegram import TelegramChannel
from bot.adapters.whatsapp import WhatsAppChannel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.desk import DESK, DeskRig
from tests.support.graph_api import GraphApiStub
from tests.support.paths import REPO
from tests.support.server import LiveServer, free_port
from tests.support.telegram import TOKEN, telegram_settings
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import ACCESS_TOKEN, whatsapp_settings


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStub]:
    stub = TelegramApiStub(TOKEN)
    await stub.start(free_port())
    yield stub
    await stub.close()


@pytest.fixture(scope="module")
async def graph_api_server() -> AsyncIterator[tuple[GraphApiStub, str]]:
    stub = GraphApiStub(ACCESS_TOKEN)
    async with LiveServer(stub.app) as server:
        yield stub, f"{server.url}/v21.0"


@pytest.fixture(scope="module")
def delivery_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kb/delivery.yaml alone: these tests are about the desk, and a small KB embeds fast."""
    folder = tmp_path_factory.mktemp("kb")
    shutil.copy(REPO / "kb" / "delivery.yaml", folder / "delivery.yaml")
    return folder


@pytest.fixture
async def desk_rig(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
    graph_api_server: tuple[GraphApiStub, str],
    delivery_kb: Path,
) -> AsyncIterator[DeskRig]:
    """The service as `supportbot run` starts it, on SQLite, with the desk in group DESK."""
    graph, graph_base = graph_api_server
    graph.reset()
    desk = {"chat_id": DESK, "poll_seconds": 0.05}
    settings = make_settings(
        kb={"path": str(delivery_kb)},
        channels={
            "telegram": telegram_settings(telegram_api.url, agent_desk=desk),
            "whatsapp": whatsapp_settings(graph_base).model_dump(),
        },
        outbox={"base_backoff_seconds": 0.2, "poll_interval_seconds": 0.1},
        handoff={"tick_seconds": 0.1},
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/desk.db")
    telegram = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,), backoff=(0.05, 0.2))
    whatsapp = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0, 0.0))
    bot = SupportBot(settings, channels=[telegram, whatsapp], encoder=encoder, database=database)
    await bot.start(background=True, progress=False)
    assert bot.desk is not None
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            yield DeskRig(bot, bot.desk, telegram, whatsapp, telegram_api, graph, http)
    finally:
        await bot.close()
