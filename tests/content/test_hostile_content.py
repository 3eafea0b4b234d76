"""Hostile content files (issue 16): a deeply nested YAML file and an oversized one are content errors with
file and line, the watcher survives them, /healthz says the content on disk could not be loaded, and edits
through the API are acknowledged as applied only when they are in service."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.content.yamlfile import MAX_FILE_BYTES, load_yaml
from bot.errors import ContentError
from bot.insights import api as insights_api
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.handoff import Api, http_client, make_agent, wait_for
from tests.support.paths import REPO
from tests.support.server import LiveServer

SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the files are what is tried

# 500 levels already exhaust the parser's recursion (the file had 100,000; the scanner slows quadratically)
DEEP = "- id: deep\n  questions:\n    en: " + "[" * 500 + "]" * 500 + "\n"
PARCEL = """- id: parcel_lockers
  questions:
    en: ["Can I pick up from a parcel locker?", "parcel locker delivery"]
    ru: ["Можно забрать из постамата?", "доставка в постамат"]
    pl: ["Czy mogę odebrać z paczkomatu?", "dostawa do paczkomatu"]
    uk: ["Можна забрати з поштомату?", "доставка в поштомат"]
  answer: {en: "Yes.", ru: "Да.", pl: "Tak.", uk: "Так."}
"""
QUESTION = "/api/v1/kb/entries/delivery_time/questions"


class Running:
    def __init__(self, bot: SupportBot, client: httpx.AsyncClient, kb: Path, sup: Api) -> None:
        self.bot, self.client, self.kb, self.sup = bot, client, kb, sup

    async def health(self) -> dict[str, object]:
        content: dict[str, object] = (await self.client.get("/healthz")).json()["content"]
        return content

    async def content_state(self, state: str) -> dict[str, object]:
        async def reached() -> dict[str, object] | None:
            content = await self.health()
            return content if content["state"] == state else None

        found: dict[str, object] = await wait_for(reached, within=60, what=f"content {state}")
        return found


@pytest.fixture
async def running(
    tmp_path: Path, make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> AsyncIterator[Running]:
    """`supportbot run` on a one-file KB of its own, its content watcher looking every 0.1 s."""
    kb = tmp_path / "kb"
    kb.mkdir()
    shutil.copy(REPO / "kb" / "delivery.yaml", kb / "delivery.yaml")
    settings = make_settings(kb={"path": str(kb), "apply_wait_seconds": 30})
    bot = SupportBot(settings, encoder=encoder, database=database)
    await bot.start(progress=False)
    watcher = asyncio.create_task(bot.content.watch(interval=0.1))
    await make_agent(bot.database, "sup", role="supervisor")
    try:
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            yield Running(bot, client, kb, await Api.login(client, "sup"))
            assert not watcher.done()  # it survived everything the test did
    finally:
        watcher.cancel()
        await bot.close()


def test_a_deeply_nested_file_is_a_content_error_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(DEEP, encoding="utf-8")
    with pytest.raises(ContentError) as raised:
        load_yaml(path)
    [problem] = raised.value.problems
    assert problem.startswith(f"{path}:3:") and "nested too deeply" in problem


# --- 7. a file that kills the parser: an error with file and line; the watcher goes on ---------------------


@SQLITE
async def test_the_watcher_survives_a_deeply_nested_file_and_healthz_says_so(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (running.kb / "deep.yaml").write_text(DEEP, encoding="utf-8")
    failed = await running.content_state("failed")
    assert f"{running.kb / 'deep.yaml'}:3:" in str(failed["error"]) and "nested too deeply" in str(
        failed["error"]
    )
    assert running.bot.matcher().kb.get("delivery_time") is not None  # the previous content still serves

    # an edit through the API meanwhile: a clear 422 naming the file, not a 500 with a traceback
    refused = await running.sup.call(
        "POST", QUESTION[len("/api/v1") :], json={"text": "When is my parcel due?"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["code"] == "invalid_content"
    assert "deep.yaml:3:" in refused.json()["detail"]["message"]

    # the broken file goes, a new entry comes: the watcher (still alive) puts it in service
    (running.kb / "deep.yaml").unlink()
    (running.kb / "parcel.yaml").write_text(PARCEL, encoding="utf-8")
    loaded = await running.content_state("loaded")
    assert loaded["error"] is None and running.bot.matcher().kb.get("parcel_lockers") is not None
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.content.reloads"]
    assert any(m.startswith("knowledge base reloaded:") and " entries in " in m for m in logged), logged


@SQLITE
async def test_an_unexpected_failure_of_an_edit_is_a_clear_500(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(insights_api.content_edit, "add_question", broken)
    failed = await running.sup.call(
        "POST", QUESTION[len("/api/v1") :], json={"text": "When is my parcel due?"}
    )
    assert failed.status_code == 500
    assert failed.json()["detail"] == {
        "code": "edit_failed",
        "message": "the edit failed (RuntimeError: disk on fire); nothing was written",
    }


# --- 11. an oversized file is refused; edits are acknowledged as applied only when in service --------------


@SQLITE
async def test_an_oversized_file_is_refused_and_edits_say_whether_they_are_in_service(
    running: Running,
) -> None:
    big = running.kb / "big.yaml"
    entry = '- id: big\n  questions:\n    en: ["a question"]\n  answer: {en: "A."}\n'
    big.write_text(entry + "#" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    failed = await running.content_state("failed")
    assert f"{big}: {big.stat().st_size} bytes, over the limit of {MAX_FILE_BYTES} bytes" in str(
        failed["error"]
    )
    refused = await running.sup.call(
        "POST", QUESTION[len("/api/v1") :], json={"text": "When is my parcel due?"}
    )
    assert refused.status_code == 422 and "over the limit" in refused.json()["detail"]["message"]
    big.unlink()
    await running.content_state("loaded")

    # in service when answered: 201, applied
    added = await running.sup.call(
        "POST", QUESTION[len("/api/v1") :], json={"text": "When is my parcel due?", "language": "en"}
    )
    assert added.status_code == 201 and added.json()["applied"] is True, added.text
    delivery = running.bot.matcher().kb.get("delivery_time")
    assert delivery is not None and "When is my parcel due?" in delivery.questions["en"]

    # a reload that cannot finish in time (another one holds it): 202, written but not applied, and why
    running.bot.settings.kb.apply_wait_seconds = 0.5
    async with running.bot.content._lock:
        late = await running.sup.call(
            "POST", QUESTION[len("/api/v1") :], json={"text": "Where is my parcel now?", "language": "en"}
        )
    assert late.status_code == 202, late.text
    assert late.json()["applied"] is False and "still running" in late.json()["status"]

    def in_service() -> bool:
        entry = running.bot.matcher().kb.get("delivery_time")
        return entry is not None and "Where is my parcel now?" in entry.questions["en"]

    await wait_for(in_service, within=60, what="the edit in service")
