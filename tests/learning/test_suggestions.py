"""Suggested KB entries from agents' answers, over real HTTP on a running bot: grouping, placeholders,
accept (a valid entry the bot then answers with), dismiss (remembered), new wording for a covered entry."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.app import SupportBot
from bot.config import Settings
from bot.content.check import check_content
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import Event
from bot.web.app import create_app
from tests.learning.history import GIFT_WRAPPING, PERSONAL, RETURNS, RETURNS_LATER, STUDENTS, hold
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, http_client, make_agent
from tests.support.paths import REPO
from tests.support.server import LiveServer


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


async def test_explore(editable_bot: SupportBot) -> None:
    bot = editable_bot
    agent = await make_agent(bot.database, "olga")
    await make_agent(bot.database, "sup", role="supervisor")
    for talk in [*GIFT_WRAPPING, *RETURNS, *STUDENTS]:
        await hold(bot, talk, agent.id)
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        sup = await Api.login(client, "sup")
        found = await sup.ok("GET", "/suggestions")
    print(yaml.safe_dump(found, allow_unicode=True, sort_keys=False))
    from datetime import timedelta
    from bot.learning.pairs import load_history, pair_up
    from bot.learning.suggestions import decide_all, embed, pair_vectors
    from bot.storage.models import utcnow
    import numpy as np
    m = bot.matcher()
    h = await load_history(bot.database, utcnow() - timedelta(days=1), 100)
    d = decide_all(m, [t.text for t in h.turns])
    for t in h.turns:
        print(t.conversation_id, t.sender, d[t.text].kind, d[t.text].label, t.text[:60])
    pairs = pair_up(h, d, ["en", "ru", "pl", "uk"])
    for p in pairs:
        print(p.conversation_id, p.question_language, p.answer_language, p.question, "=>", p.answer[:80])
    q = embed(m, [p.raw_question for p in pairs]); a = embed(m, [p.answer for p in pairs])
    np.set_printoptions(precision=3, linewidth=200)
    print(q @ q.T); print(a @ a.T); pv = pair_vectors(q, a); print(pv @ pv.T)
    assert False
