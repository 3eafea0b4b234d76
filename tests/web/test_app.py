"""The HTTP service over a real socket, and content reload without a restart."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.web.app import create_app
from tests.support.channel import incoming
from tests.support.handoff import wait_for
from tests.support.model import hung_model
from tests.support.paths import REPO
from tests.support.server import LiveServer


async def test_healthz_reports_database_and_kb(bot: SupportBot) -> None:
    async with LiveServer(create_app(bot, start=False)) as server, httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["kb_entries"] == len(bot.matcher().kb.entries)


async def test_healthz_is_503_before_the_kb_is_loaded(make_settings: Callable[..., Settings]) -> None:
    idle = SupportBot(make_settings())
    try:
        await idle.database.migrate()
        async with LiveServer(create_app(idle, start=False)) as server, httpx.AsyncClient() as client:
            response = await client.get(f"{server.url}/healthz")
        assert response.status_code == 503 and response.json()["status"] == "degraded"
    finally:
        await idle.close()


async def test_healthz_is_503_while_a_model_call_hangs_past_the_deadline(
    bot: SupportBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung model (fault injection: a call that blocks until released): its messages go to people after
    policy.understanding_timeout_seconds, and /healthz says the model is stuck, so an orchestrator restarts
    the process; once the call returns, healthy again."""
    async with LiveServer(create_app(bot, start=False)) as server, httpx.AsyncClient() as client:
        with hung_model(bot, monkeypatch, deadline=0.3):
            result = await bot.receive(incoming("How can I pay for my order?"))
            assert result.decision is not None and result.decision.reason == "bot_timeout"
            stuck = await client.get(f"{server.url}/healthz")
        await wait_for(
            lambda: bot.engine.longest_model_call_seconds() == 0, 10, "the released call returning"
        )
        healthy = await client.get(f"{server.url}/healthz")
    assert stuck.status_code == 503
    assert stuck.json()["model_state"] == "stuck" and stuck.json()["longest_model_call_seconds"] >= 0.3
    assert healthy.status_code == 200 and healthy.json()["longest_model_call_seconds"] == 0


async def test_kb_reload_picks_up_edits_and_survives_broken_files(
    tmp_path: Path, make_settings: Callable[..., Settings], encoder: E5Encoder
) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(REPO / "kb", kb_dir)
    bot = SupportBot(make_settings(kb={"path": str(kb_dir)}), encoder=encoder)
    await bot.start(progress=False)
    try:
        entry = """
- id: parrot_food
  tags: [pets]
  questions:
    en: ["Do you sell parrot food?", "parrot seeds", "food for my parrot", "bird food for a parrot"]
    ru: ["Продаёте корм для попугаев?", "корм для попугая", "еда для попугая", "семена для попугая"]
    pl: ["Czy sprzedajecie karmę dla papug?", "karma dla papugi", "jedzenie dla papugi", "ziarno dla papugi"]
    uk: ["Чи продаєте корм для папуг?", "корм для папуги", "їжа для папуги", "зерно для папуги"]
  answer: {en: "Yes, in Pets.", ru: "Да, в разделе Питомцы.", pl: "Tak, w dziale Zwierzęta.", uk: "Так, у розділі Тварини."}
"""
        (kb_dir / "pets.yaml").write_text(entry, encoding="utf-8")
        await bot.reload_content()
        assert bot.matcher().kb.get("parrot_food") is not None
        (kb_dir / "pets.yaml").write_text("- id: [broken\n", encoding="utf-8")
        await bot.reload_content()  # logged, and the previous content stays in service
        assert bot.matcher().kb.get("parrot_food") is not None
        result = await bot.receive(incoming("Jak długo trwa dostawa?"))
        assert result.decision is not None and result.decision.label == "delivery_time"
    finally:
        await bot.close()
