"""The desk tests' rig: `supportbot run` with Telegram (polling), WhatsApp and the desk, over real HTTP."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from bot.adapters.telegram import TelegramChannel
from bot.adapters.webchat import WebchatChannel
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
from tests.support.telegram import SECRET, TOKEN, telegram_settings
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


@contextlib.asynccontextmanager
async def running_desk(
    settings: Settings, tmp_path: Path, encoder: E5Encoder, api: TelegramApiStub, graph: GraphApiStub
) -> AsyncIterator[DeskRig]:
    """`supportbot run` (outbox, workers, channels, the desk) on SQLite, served over a real socket."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/desk.db")
    telegram = TelegramChannel(settings.channels.telegram, retry_delays=(0.0,), backoff=(0.05, 0.2))
    whatsapp = WhatsAppChannel(settings.channels.whatsapp, retry_delays=(0.0, 0.0))
    webchat = WebchatChannel(settings.channels.webchat)
    bot = SupportBot(settings, channels=[telegram, whatsapp, webchat], encoder=encoder, database=database)
    await bot.start(background=True, progress=False)
    assert bot.desk is not None
    try:
        async with (
            LiveServer(create_app(bot, start=False)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            yield DeskRig(bot, bot.desk, telegram, whatsapp, api, graph, http)
    finally:
        await bot.close()


@pytest.fixture
def desk_settings(
    make_settings: Callable[..., Settings],
    telegram_api: TelegramApiStub,
    graph_api_server: tuple[GraphApiStub, str],
    delivery_kb: Path,
) -> Callable[..., Settings]:
    """Settings for the desk rigs: Telegram (with the desk in group DESK) and WhatsApp, on the stand-ins."""

    def build(**telegram: object) -> Settings:
        graph_api_server[0].reset()
        desk = {"chat_id": DESK, "poll_seconds": 0.05}
        return make_settings(
            kb={"path": str(delivery_kb)},
            channels={
                "telegram": telegram_settings(telegram_api.url, agent_desk=desk, **telegram),
                "whatsapp": whatsapp_settings(graph_api_server[1]).model_dump(),
            },
            outbox={"base_backoff_seconds": 0.2, "poll_interval_seconds": 0.1},
            handoff={"tick_seconds": 0.1},
        )

    return build


@pytest.fixture
async def desk_rig(
    desk_settings: Callable[..., Settings],
    tmp_path: Path,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
    graph_api_server: tuple[GraphApiStub, str],
) -> AsyncIterator[DeskRig]:
    """The desk with the Telegram channel polling."""
    async with running_desk(desk_settings(), tmp_path, encoder, telegram_api, graph_api_server[0]) as rig:
        yield rig


@pytest.fixture
async def webhook_desk_rig(
    desk_settings: Callable[..., Settings],
    tmp_path: Path,
    encoder: E5Encoder,
    telegram_api: TelegramApiStub,
    graph_api_server: tuple[GraphApiStub, str],
) -> AsyncIterator[DeskRig]:
    """The desk with the Telegram channel in webhook mode (updates POSTed to /webhooks/telegram)."""
    settings = desk_settings(
        mode="webhook", webhook_url="https://support.example.com/webhooks/telegram", webhook_secret=SECRET
    )
    async with running_desk(settings, tmp_path, encoder, telegram_api, graph_api_server[0]) as rig:
        yield rig
