"""The three examples of docs/extending.md run against the real interfaces."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bot.adapters.base import Channel, DeliveryTarget, Inbox, Received
from bot.config import Settings
from bot.handoff.providers import CallableProvider, fetch_all, is_vip
from bot.messages import IncomingMessage, OutgoingReply
from bot.nlu.matcher import Matcher
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")


def _example(section: str) -> dict[str, Any]:
    """Run the first Python block under the heading `section` and return what it defined."""
    part = PAGE.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", part, re.S)
    assert code, f"no Python example under {section!r}"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), f"docs/extending.md: {section}", "exec"), namespace)
    return namespace


def _route_httpx(monkeypatch: pytest.MonkeyPatch, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    """Every httpx.AsyncClient the example makes talks to `handler` instead of the network."""
    real = httpx.AsyncClient

    def client(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        return real(*args, **kwargs, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(httpx, "AsyncClient", client)


def test_every_python_example_compiles() -> None:
    for number, code in enumerate(re.findall(r"```python\n(.*?)```", PAGE, re.S)):
        compile(code, f"docs/extending.md example {number}", "exec")


async def test_context_provider_example_lands_on_the_card(monkeypatch: pytest.MonkeyPatch) -> None:
    def crm(request: httpx.Request) -> httpx.Response:
        assert (request.url.host, request.url.path) == ("crm.example", "/customers")
        tier = "gold" if request.url.params["phone"] == "+48500100200" else "basic"
        return httpx.Response(200, json={"tier": tier, "open_tickets": 1})

    _route_httpx(monkeypatch, crm)
    provider = CallableProvider("crm", _example("A context provider")["fetch"], timeout=2)
    card = await fetch_all([provider], {"phone": "+48500100200", "channel": "whatsapp"})
    assert card["crm"]["status"] == "ok"
    assert card["crm"]["data"] == {"tier": "gold", "open_tickets": 1, "vip": True}
    assert is_vip(card)


async def test_channel_example_receives_and_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/inbox":
            return httpx.Response(200, json=[{"id": "m1", "from": "+48500100200", "text": "hello"}])
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"id": 77})

    _route_httpx(monkeypatch, gateway)
    channel = _example("A channel")["SmsChannel"]("http://gateway.test")
    assert isinstance(channel, Channel) and channel.name == "sms"
    arrived: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def receive(message: IncomingMessage) -> Received:
        await arrived.put(message)
        return Received()

    async def ignore(*_: Any) -> None:
        return None

    await channel.start(Inbox(receive=receive, customer_blocked=ignore, delivery_status=ignore, spool=None))  # type: ignore[arg-type]
    message = await asyncio.wait_for(arrived.get(), timeout=30)
    assert (message.channel, message.chat_id, message.text, message.platform_message_id) == (
        "sms",
        "+48500100200",
        "hello",
        "m1",
    )
    target = DeliveryTarget(
        channel="sms", chat_id="+48500100200", customer_id="+48500100200", conversation_id=1
    )
    assert await channel.send(target, OutgoingReply(text="Hi!")) == "77"
    assert sent == [{"to": "+48500100200", "text": "Hi!"}]
    await channel.stop()


def test_encoder_example_serves_the_intent_layer(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    encoder = _example("An encoder")["HashedWordsEncoder"]()
    rows = encoder.encode(["Where is my parcel?", ""])
    assert rows.shape == (2, encoder.dim) and rows.dtype == np.float32
    assert np.isclose(np.linalg.norm(rows[0]), 1.0)
    # nearest neighbour only: training the classifier head would take seconds and prove nothing more here
    settings = make_settings(
        embedding={"cache_dir": str(tmp_path / "index")}, policy={"classifier": False, "lexical": False}
    )
    matcher = Matcher.load(settings, encoder, progress=False, calibrate=False)
    decision = matcher.understand("How long does delivery take?")
    assert decision.label == "delivery_time"
