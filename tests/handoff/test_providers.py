"""Context providers over real HTTP (a shop stand-in served by the test): data on the card, failures shown,
and the handoff never waits for them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.app import SupportBot
from bot.config import Settings
from bot.errors import ConfigError
from bot.handoff.providers import CallableProvider, providers_from_settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import Api, desk_of, http_client, make_agent
from tests.support.server import LiveServer

ORDERS = {
    "orders": [
        {
            "number": "A-1042",
            "status": "shipped",
            "city": "Kraków",
            "address": "ul. Długa 5",
            "expected_delivery": "2026-12-02",
        },
        {"number": "A-0977", "status": "delivered", "city": "Kraków", "address": "ul. Długa 5"},
    ],
    "vip": True,
}


class Shop:
    """The shop's API as a context provider sees it: one fast, one slow, one broken endpoint."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()  # the slow endpoint answers only when the test ends

        @self.app.get("/customers/{phone}/orders")
        async def orders(phone: str, request: Request) -> JSONResponse:
            self.requests.append({"phone": phone, "auth": request.headers.get("authorization")})
            return JSONResponse(ORDERS)

        @self.app.get("/loyalty")
        async def slow() -> JSONResponse:
            await self.release.wait()
            return JSONResponse({"points": 10})

        @self.app.get("/crm")
        async def broken() -> JSONResponse:
            return JSONResponse({"error": "database down"}, status_code=503)


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Shop, str]]:
    stand_in = Shop()
    async with LiveServer(stand_in.app) as server:
        yield stand_in, server.url
        stand_in.release.set()


@pytest.fixture
async def shop_bot(
    shop: tuple[Shop, str],
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    channel: RecordingChannel,
) -> AsyncIterator[SupportBot]:
    _, url = shop
    settings = make_settings(
        handoff={
            "context_providers": {
                "orders": {
                    "url": url + "/customers/{phone}/orders",
                    "headers": {"Authorization": "Bearer shop-secret"},
                },
                "loyalty": {"url": url + "/loyalty?customer={external_id}", "timeout": 1.5},
                "crm": {"url": url + "/crm?channel={channel}&id={external_id}"},
            }
        }
    )
    instance = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await instance.start(progress=False)
    yield instance
    await desk_of(instance).close()
    instance.executor.shutdown(wait=False)


async def test_providers_fill_the_card_and_never_delay_the_handoff(
    shop_bot: SupportBot, shop: tuple[Shop, str]
) -> None:
    stand_in, _ = shop
    desk = desk_of(shop_bot)
    await make_agent(shop_bot.database, "anna", status="online")
    started = time.monotonic()
    result = await shop_bot.receive(incoming("I want to talk to a human", phone="+48 600 100 200"))
    handoff_seconds = time.monotonic() - started
    assert result.conversation_id is not None and result.replies
    assert handoff_seconds < 1.5  # answered before the slow provider's timeout, let alone its answer

    async def card() -> dict[str, Any]:
        async with LiveServer(create_app(shop_bot, start=False)) as server, http_client(server.url) as client:
            anna = await Api.login(client, "anna")
            detail: dict[str, Any] = await anna.ok("GET", f"/conversations/{result.conversation_id}")
            return detail["context"]

    # the slow provider is cut at its timeout: the card is complete within it (plus a margin)
    await asyncio.wait_for(desk.drain(), timeout=1.5 + 3)
    context = await card()
    providers = context["providers"]
    assert providers["orders"]["status"] == "ok"
    first = providers["orders"]["data"]["orders"][0]
    assert (
        first["number"],
        first["status"],
        first["city"],
        first["address"],
        first["expected_delivery"],
    ) == (
        "A-1042",
        "shipped",
        "Kraków",
        "ul. Długa 5",
        "2026-12-02",
    )
    assert providers["loyalty"] == {
        **providers["loyalty"],
        "status": "error",
        "error": "timed out after 1.5 s",
    }
    assert providers["crm"]["status"] == "error" and providers["crm"]["error"].startswith("HTTP 503")
    # the URL template got the customer's phone (URL-encoded), and the configured header was sent
    assert stand_in.requests == [{"phone": "+48 600 100 200", "auth": "Bearer shop-secret"}]
    # the provider said VIP: the card shows it and the queue priority was bumped
    assert context["vip"] is True and context["priority"] == shop_bot.settings.handoff.priority["vip"]


async def test_python_callable_providers_and_their_failures(bot: SupportBot) -> None:
    desk = desk_of(bot)

    async def crm(customer: dict[str, Any]) -> dict[str, Any]:
        return {"segment": "wholesale", "seen_as": customer["name"], "vip": False}

    def flaky(customer: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("CRM token expired")

    async def stuck(customer: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    desk.add_provider(CallableProvider("crm", crm))
    desk.add_provider(CallableProvider("flaky", flaky))
    desk.add_provider(CallableProvider("stuck", stuck, timeout=0.2))
    result = await bot.receive(incoming("I want to talk to a human", display_name="Ola"))
    await desk.drain()
    async with bot.database.session() as session:
        from bot.storage.models import Conversation

        row = await session.get(Conversation, result.conversation_id)
        assert row is not None
        providers = row.handoff_context["providers"]
    assert providers["crm"]["data"] == {"segment": "wholesale", "seen_as": "Ola", "vip": False}
    assert providers["flaky"] == {
        **providers["flaky"],
        "status": "error",
        "error": "RuntimeError: CRM token expired",
    }
    assert providers["stuck"]["error"] == "timed out after 0.2 s"
    assert row.priority == 0


def test_provider_configuration_errors_are_clear(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="exactly one of url or callable"):
        make_settings(handoff={"context_providers": {"orders": {"headers": {}}}})
    settings = make_settings(handoff={"context_providers": {"orders": {"url": "http://shop/{email}"}}})
    with pytest.raises(ConfigError, match=r"unknown field\(s\) email"):
        providers_from_settings(settings.handoff.context_providers, httpx.AsyncClient)
    settings = make_settings(handoff={"context_providers": {"orders": {"callable": "shop.plugins:nothing"}}})
    with pytest.raises(ConfigError, match=r"cannot import 'shop\.plugins:nothing'"):
        providers_from_settings(settings.handoff.context_providers, httpx.AsyncClient)
