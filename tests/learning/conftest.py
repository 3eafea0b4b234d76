"""The learning tests' bot: the demo content copied, so accepting a suggestion can write it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from tests.support.channel import RecordingChannel
from tests.support.paths import REPO


@pytest.fixture
async def editable_bot(
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
    tmp_path: Path,
) -> AsyncIterator[SupportBot]:
    """A started bot on a copy of the demo content, so accepting a suggestion can write it."""
    shutil.copytree(REPO / "kb", tmp_path / "kb")
    shutil.copytree(REPO / "intents", tmp_path / "intents")
    settings = make_settings(kb={"path": str(tmp_path / "kb")}, intents={"path": str(tmp_path / "intents")})
    instance = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await instance.start(progress=False)
    yield instance
    await instance.close()
