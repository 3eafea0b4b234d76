"""Fixtures of the integration tests: the stand-in Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.server import free_port
from tests.support.telegram import TOKEN
from tests.support.telegram_api import TelegramApiStub


@pytest.fixture
async def telegram_api() -> AsyncIterator[TelegramApiStub]:
    """The stand-in Bot API (what the team's aiogram Bot and channels.telegram.api_base point at)."""
    stub = TelegramApiStub(TOKEN)
    await stub.start(free_port())
    yield stub
    await stub.close()
