"""Fixtures of the channel tests: the stand-in Bot API and Graph API, and a one-file KB that embeds fast."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.graph_api import GraphApiStub
from tests.support.paths import REPO
from tests.support.server import LiveServer, free_port
from tests.support.telegram import TOKEN
from tests.support.telegram_api import TelegramApiStub
from tests.support.whatsapp import ACCESS_TOKEN


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStub]:
    """The stand-in Bot API (what channels.telegram.api_base points at)."""
    stub = TelegramApiStub(TOKEN)
    await stub.start(free_port())
    yield stub
    await stub.close()


@pytest.fixture(scope="module")
async def graph_api_server() -> AsyncIterator[tuple[GraphApiStub, str]]:
    """One stand-in Graph API server for the module (starting one per test costs more than the test)."""
    stub = GraphApiStub(ACCESS_TOKEN)
    async with LiveServer(stub.app) as server:
        yield stub, f"{server.url}/v21.0"


@pytest.fixture
def graph_api(graph_api_server: tuple[GraphApiStub, str]) -> tuple[GraphApiStub, str]:
    """The stand-in Graph API, emptied, and its base URL (what channels.whatsapp.graph_api_base points at)."""
    graph_api_server[0].reset()
    return graph_api_server


@pytest.fixture(scope="module")
def delivery_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped kb/delivery.yaml alone: these tests are about the channel, and a small KB embeds fast."""
    folder = tmp_path_factory.mktemp("kb")
    shutil.copy(REPO / "kb" / "delivery.yaml", folder / "delivery.yaml")
    return folder
