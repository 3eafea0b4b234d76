"""The console's pages and its extra API (/api/v1/console), and the demo agent of `supportbot run`."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import SupportBot
from bot.config import Settings
from bot.handoff.agents import AgentRepository
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from bot.web.demo_agent import DEMO_LOGIN, ensure_demo_agent, sqlite_file
from tests.support.handoff import Api, desk_of, http_client, make_agent, webchat_bot
from tests.support.server import LiveServer


@pytest.fixture
async def webbot(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> AsyncIterator[SupportBot]:
    settings = make_settings()
    async with webchat_bot(settings, database, encoder) as instance:
        yield instance


async def test_console_api_suggests_answers_counts_unread_and_lists_agents(webbot: SupportBot) -> None:
    await make_agent(webbot.database, "anna", name="Anna", status="online")
    await make_agent(webbot.database, "olek", name="Olek", status="online")
    await make_agent(webbot.database, "piotr", name="Piotr")
    you = "visitor-0123456789abcdef"
    async with LiveServer(create_app(webbot, start=False)) as server, http_client(server.url) as client:
        assert (await client.get("/api/v1/console/settings")).status_code == 401
        chat = f"/api/v1/webchat/{you}/messages"
        await client.post(chat, json={"text": "Jak mogę zapłacić za zamówienie?"})
        await client.post(chat, json={"text": "Chcę rozmawiać z konsultantem"})
        await desk_of(webbot).drain()

        anna = await Api.login(client, "anna")
        olek = await Api.login(client, "olek")
        settings = await anna.ok("GET", "/console/settings")
        assert settings["agent"]["login"] == "anna" and settings["sla_first_response"] == 180
        assert settings["canned_responses"][0]["title"] == "Greeting"
        assert "{agent}" in settings["canned_responses"][0]["text"]["pl"]

        [mine] = await anna.ok("GET", "/conversations", params={"mine": "true"})  # assigned on handoff
        conversation_id = mine["id"]
        suggested = await anna.ok("GET", f"/console/conversations/{conversation_id}/suggestions")
        # for the last question (not the request for a person), in the conversation's language
        assert suggested["for_message"]["text"] == "Jak mogę zapłacić za zamówienie?"
        assert suggested["language"] == "pl"
        top = suggested["suggestions"][0]
        assert top["entry"] == "payment_methods" and top["already_answered"] is True
        assert (
            "BLIK" in top["answer"] and "Przelewy24" in top["answer"] and top["answer"].startswith("Możesz")
        )
        assert len(suggested["suggestions"]) == 3

        unread = await anna.ok("GET", "/console/unread")
        assert [u["conversation_id"] for u in unread] == [conversation_id]
        assert len(unread[0]["customer_message_ids"]) == 2  # nothing answered by an agent yet
        await anna.ok("POST", f"/conversations/{conversation_id}/messages", json={"text": "Dzień dobry!"})
        assert (await anna.ok("GET", "/console/unread"))[0]["customer_message_ids"] == []
        await client.post(chat, json={"text": "A BLIK?"})
        assert len((await anna.ok("GET", "/console/unread"))[0]["customer_message_ids"]) == 1

        online = await anna.ok("GET", "/console/agents")
        assert sorted((a["login"], a["me"]) for a in online) == [("anna", True), ("olek", False)]

        # another agent cannot read anna's conversation through the console API either
        denied = await olek.call("GET", f"/console/conversations/{conversation_id}/suggestions")
        assert denied.status_code == 403
        missing = await anna.call("GET", "/console/conversations/999999/suggestions")
        assert missing.status_code == 404


async def test_pages_are_served_with_a_strict_policy(webbot: SupportBot) -> None:
    async with LiveServer(create_app(webbot, start=False)) as server, http_client(server.url) as client:
        shop = await client.get("/")
        assert shop.status_code == 200 and "Northwind" in shop.text
        assert '<script src="/static/widget.js' in shop.text
        policy = shop.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        console = await client.get("/agent")
        assert console.status_code == 200 and 'id="login-form"' in console.text
        assert console.headers["x-frame-options"] == "DENY"
        for asset in (
            "widget.js",
            "widget.css",
            "console.js",
            "insights.js",
            "knowledge.js",
            "console.css",
            "shop.css",
        ):
            response = await client.get(f"/static/{asset}")
            assert response.status_code == 200 and len(response.text) > 100, asset
            assert "innerHTML" not in response.text, asset  # text only ever goes in as textContent
        for asset in ("widget.js", "console.js", "insights.js", "knowledge.js"):
            script = (await client.get(f"/static/{asset}")).text
            assert "http://" not in script and "https://cdn" not in script  # nothing from other hosts


async def test_no_shop_page_without_the_web_chat(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    bot = SupportBot(make_settings(), channels=[], database=database)
    try:
        async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
            assert (await client.get("/")).status_code == 404
            assert (await client.get("/agent")).status_code == 200
    finally:
        await desk_of(bot).close()
        bot.executor.shutdown(wait=False)


async def test_demo_agent_is_created_once_and_recalled(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/demo.db"})
    created = await ensure_demo_agent(settings)
    assert created is not None and created.created and created.login == DEMO_LOGIN
    assert created.file == tmp_path / "demo.demo-agent.json"
    assert stat.S_IMODE(created.file.stat().st_mode) == 0o600
    assert json.loads(created.file.read_text()) == {"login": "demo", "password": created.password}

    again = await ensure_demo_agent(settings)
    assert again is not None and not again.created and again.password == created.password

    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            demo = await AgentRepository(session).by_login("demo")
            assert demo is not None and demo.role == "supervisor"
            demo.password_hash = "changed"  # someone set a real password: it is not printed any more
        assert await ensure_demo_agent(settings) is None
    finally:
        await database.close()


async def test_no_demo_agent_when_agents_exist_or_off_sqlite(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/team.db"})
    database = Database(settings.database_url)
    await database.migrate()
    await make_agent(database, "anna")
    await database.close()
    assert await ensure_demo_agent(settings) is None
    assert not (tmp_path / "team.demo-agent.json").exists()
    assert await ensure_demo_agent(make_settings(console={"demo_agent": False})) is None
    assert (
        sqlite_file("postgresql+asyncpg://u@h/db") is None
        and sqlite_file("sqlite+aiosqlite:///:memory:") is None
    )
    postgres = make_settings(database={"url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"})
    assert await ensure_demo_agent(postgres) is None  # never connects: PostgreSQL gets no demo agent
