"""GET /metrics read by prometheus-client's own parser after real traffic; loopback or token only; the
counters of a second process in multi-process mode."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import SupportBot
from bot.config import Settings
from bot.errors import SendError
from bot.handoff.providers import CallableProvider
from bot.insights import metrics
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.web.app import create_app
from tests.support.actions import SAMPLE_ACTIONS, actions_settings, started_bot
from tests.support.channel import RecordingChannel, incoming
from tests.support.handoff import desk_of, http_client, make_agent
from tests.support.paths import REPO
from tests.support.server import LiveServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family name -> type, and (sample name, sorted labels) -> value, as Prometheus reads them."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/metrics.db")
    await db.migrate()
    yield db
    await db.close()


async def failing_provider(customer: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("the shop's API is down")


async def test_families_and_labels_after_real_traffic(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, channel: RecordingChannel
) -> None:
    settings = make_settings(**actions_settings(package=SAMPLE_ACTIONS, timeout_seconds=2))
    async with started_bot(settings, database, encoder, channel) as bot:
        desk_of(bot).add_provider(CallableProvider("orders", failing_provider))
        app = create_app(bot, start=False)
        async with LiveServer(app) as server, http_client(server.url) as client:
            before = parse((await client.get("/metrics")).text)[1]
            await make_agent(bot.database, "anna", status="away")
            await bot.receive(incoming("How long does delivery take?", customer="a"))
            await bot.receive(
                incoming("What's the weather going to be like in Paris tomorrow?", customer="b")
            )
            channel.fail_next.append(SendError("429 from the platform", retry_after=30))
            await bot.receive(incoming(customer="c", payload="act:/action_remember"))
            await bot.receive(incoming(customer="d", payload="act:/action_explode"))  # fails: a handoff
            await bot.receive(incoming("I want to talk to a human", customer="e"))
            await desk_of(bot).drain()
            await client.get("/api/v1/conversations/12345")  # 401, on its route template
            await client.get("/no/such/page")
            scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    types, after = parse(scraped.text)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    for family, kind in {
        "supportbot_messages_in": "counter",
        "supportbot_messages_out": "counter",
        "supportbot_bot_decisions": "counter",
        "supportbot_model_latency_seconds": "histogram",
        "supportbot_handoffs": "counter",
        "supportbot_outbox_send_failures": "counter",
        "supportbot_spool_failures": "counter",
        "supportbot_context_provider_latency_seconds": "histogram",
        "supportbot_context_provider_errors": "counter",
        "supportbot_action_call_latency_seconds": "histogram",
        "supportbot_action_call_errors": "counter",
        "supportbot_sla_breaches": "counter",
        "supportbot_http_request_duration_seconds": "histogram",
        "supportbot_queue_length": "gauge",
        "supportbot_queue_oldest_wait_seconds": "gauge",
        "supportbot_queue_sla_seconds": "gauge",
        "supportbot_agents_online": "gauge",
        "supportbot_outbox_backlog": "gauge",
        "supportbot_spool_backlog": "gauge",
        "supportbot_model_call_running_seconds": "gauge",
    }.items():
        assert types.get(family) == kind, family
    assert grew("supportbot_messages_in_total", channel="test") == 5
    assert grew("supportbot_bot_decisions_total", kind="answer") >= 1
    assert grew("supportbot_bot_decisions_total", kind="fallback") == 1
    assert grew("supportbot_bot_decisions_total", kind="handoff") == 2  # the person, the failed action
    assert grew("supportbot_handoffs_total", reason="human_request") == 1
    assert grew("supportbot_handoffs_total", reason="action_failed") == 1
    assert grew("supportbot_model_latency_seconds_count", model=bot.matcher().encoder.model_id) >= 1
    assert grew("supportbot_messages_out_total", channel="test") == len(channel.sent)
    assert grew("supportbot_outbox_send_failures_total", channel="test", outcome="retry") == 1
    assert grew("supportbot_context_provider_latency_seconds_count", provider="orders") == 2
    assert grew("supportbot_context_provider_errors_total", provider="orders") == 2
    assert grew("supportbot_action_call_latency_seconds_count", action="action_remember") == 1
    assert grew("supportbot_action_call_errors_total", action="action_explode") == 1
    assert grew("supportbot_action_call_errors_total", action="action_remember") == 0
    assert value(after, "supportbot_queue_length") == 2
    assert value(after, "supportbot_queue_oldest_wait_seconds") >= 0
    assert value(after, "supportbot_queue_sla_seconds") == settings.handoff.sla_first_response
    assert value(after, "supportbot_agents_online") == 0
    assert value(after, "supportbot_outbox_backlog") == 1  # the reply whose send got a 429
    assert value(after, "supportbot_spool_backlog", state="waiting") == 0
    http = "supportbot_http_request_duration_seconds_count"
    assert grew(http, method="GET", route="/api/v1/conversations/{conversation_id}", status="401") == 1
    assert grew(http, method="GET", route="unmatched", status="404") == 1
    assert grew(http, method="GET", route="/metrics", status="200") == 1
    assert not any("12345" in dict(labels).get("route", "") for _, labels in after)


async def test_only_loopback_or_the_token_may_scrape(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, channel: RecordingChannel
) -> None:
    settings = make_settings(metrics={"token": "s3cret-scrape"})
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    app = create_app(bot, start=False)

    async def scrape(client_host: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            return await client.get("/metrics", headers=headers)

    assert (await scrape("127.0.0.1")).status_code == 200
    assert (await scrape("::1")).status_code == 200
    remote = await scrape("203.0.113.7")
    assert remote.status_code == 403 and remote.json()["detail"]["code"] == "forbidden"
    assert (await scrape("203.0.113.7", authorization="Bearer wrong")).status_code == 403
    assert (await scrape("203.0.113.7", authorization="Bearer s3cret-scrape")).status_code == 200
    widened = SupportBot(
        make_settings(metrics={"allow": ["10.0.0.0/8"]}),
        channels=[channel],
        encoder=encoder,
        database=database,
    )
    transport = httpx.ASGITransport(app=create_app(widened, start=False), client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        assert (await client.get("/metrics")).status_code == 200
    unlisted = SupportBot(make_settings(metrics={"enabled": False}), channels=[channel], database=database)
    transport = httpx.ASGITransport(app=create_app(unlisted, start=False), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        assert (await client.get("/metrics")).status_code == 404


SECOND_PROCESS = """
import sys
from pathlib import Path
from bot.insights import metrics
metrics.configure(Path(sys.argv[1]))
metrics.message_in("whatsapp")
metrics.message_in("whatsapp")
metrics.handoff("complaint")
metrics.model_call("builtin:multilingual-e5-small", 0.04)
"""


@pytest.fixture
def multiprocess_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "prometheus"
    yield folder
    metrics.configure(None)  # the rest of the session records in-process again


async def test_a_second_process_counters_are_in_the_scrape(
    make_settings: Callable[..., Settings],
    database: Database,
    channel: RecordingChannel,
    multiprocess_dir: Path,
) -> None:
    settings = make_settings(metrics={"multiprocess_dir": str(multiprocess_dir)})
    bot = SupportBot(settings, channels=[channel], database=database)  # switches this process to files
    metrics.message_in("test")
    metrics.handoff("complaint")
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SECOND_PROCESS, str(multiprocess_dir), cwd=REPO
    )
    assert await asyncio.wait_for(second.wait(), 60) == 0
    files = await asyncio.to_thread(lambda: list(multiprocess_dir.glob("counter_*.db")))
    assert len(files) == 2  # one file per process
    transport = httpx.ASGITransport(app=create_app(bot, start=False), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        _, samples = parse((await client.get("/metrics")).text)
    assert value(samples, "supportbot_messages_in_total", channel="whatsapp") == 2
    assert value(samples, "supportbot_messages_in_total", channel="test") == 1
    assert value(samples, "supportbot_handoffs_total", reason="complaint") == 2  # summed over both
    assert (
        value(samples, "supportbot_model_latency_seconds_count", model="builtin:multilingual-e5-small") == 1
    )
    assert "supportbot_queue_length" in {name for name, _ in samples}
