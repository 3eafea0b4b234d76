"""Hardening over real HTTP: log-in rate limits (in-process and Redis), single-use event tickets instead of
?token=, streams and stored tokens that end with their session, the web chat limit shared across processes
through Redis, and no secrets in the access log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from sqlalchemy import func, select

from bot.adapters.webchat import WebchatChannel
from bot.app import SupportBot
from bot.config import RedisSettings, Settings
from bot.handoff.agents import AgentRepository
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from bot.storage.models import AgentToken, utcnow
from bot.web.app import create_app
from bot.web.ratelimit import Limiter, MemoryLimiter, Quota, RedisLimiter, make_limiter
from bot.web.redact import redact_url
from tests.support.handoff import PASSWORD, Api, desk_of, http_client, make_agent
from tests.support.server import LiveServer
from tests.support.services import REDIS_URL

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of our own in the test Redis (SUPPORTBOT_TEST_REDIS_URL); its keys are removed after."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def redis_settings(prefix: str) -> dict[str, Any]:
    return {"url": REDIS_URL, "key_prefix": prefix}


@pytest.fixture(params=["memory", "redis"])
async def desk_bot(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    database: Database,
    encoder: E5Encoder,
    redis_prefix: str,
) -> AsyncIterator[SupportBot]:
    """A started bot with the web chat; its rate limits in-process or in the test Redis."""
    settings = make_settings(
        handoff={
            "login_max_failures": 3,
            "login_max_failures_per_address": 7,
            "login_window_seconds": 30,
            "events_ticket_seconds": 1,
        },
        channels={"webchat": {"rate_limit_per_minute": 3}},
        redis=redis_settings(redis_prefix) if request.param == "redis" else {},
    )
    instance = SupportBot(
        settings, channels=[WebchatChannel(settings.channels.webchat)], encoder=encoder, database=database
    )
    assert instance.limiter.backend == request.param
    await instance.start(progress=False)
    yield instance
    await desk_of(instance).close()
    await instance.limiter.close()
    instance.executor.shutdown(wait=False)


async def attempt(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"login": login, "password": password})


async def test_login_is_rate_limited_per_account_and_address(desk_bot: SupportBot) -> None:
    await make_agent(desk_bot.database, "anna")
    await make_agent(desk_bot.database, "bob")
    async with LiveServer(create_app(desk_bot, start=False)) as server, http_client(server.url) as client:
        for _ in range(3):
            assert (await attempt(client, "anna", "wrong password")).status_code == 401
        # the fourth try is refused before the password is even looked at, right or wrong
        refused = await attempt(client, "anna", PASSWORD)
        assert refused.status_code == 429
        detail = refused.json()["detail"]
        assert detail["code"] == "rate_limited"
        retry = int(refused.headers["Retry-After"])
        assert 1 <= retry <= 30 and detail["message"] == f"too many failed log-ins: try again in {retry} s"
        assert (await attempt(client, "ANNA ", PASSWORD)).status_code == 429  # same account, other spelling

        # another account from the same address is not locked out by anna's failures...
        assert (await attempt(client, "bob", PASSWORD)).status_code == 200
        # ...and a successful log-in clears that account's failures
        for _ in range(2):
            assert (await attempt(client, "bob", "wrong password")).status_code == 401
        assert (await attempt(client, "bob", PASSWORD)).status_code == 200
        for _ in range(2):
            assert (await attempt(client, "bob", "wrong password")).status_code == 401  # not 429: reset

        # the address has now failed 7 times (3 + 2 + 2): every account is refused from it, even unknown ones
        for login in ("carol", "bob"):
            blocked = await attempt(client, login, PASSWORD)
            assert blocked.status_code == 429, login
            assert blocked.json()["detail"]["code"] == "rate_limited"
        # nothing above was counted as a log-in
        assert (await Api(client).call("GET", "/agents/me")).status_code == 401


async def test_concurrent_guesses_cannot_slip_past_the_limit(desk_bot: SupportBot) -> None:
    await make_agent(desk_bot.database, "anna")
    async with LiveServer(create_app(desk_bot, start=False)) as server, http_client(server.url) as client:
        answers = await asyncio.gather(*(attempt(client, "anna", f"guess {n}") for n in range(10)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [401] * 3 + [429] * 7  # counted before the (slow) password check, not after


@contextlib.asynccontextmanager
async def two_services(
    settings: Settings, database: Database, encoder: E5Encoder
) -> AsyncIterator[tuple[SupportBot, httpx.AsyncClient, httpx.AsyncClient]]:
    """Two services on one database (as two `supportbot run` processes would be), a client for each."""
    first, second = (
        SupportBot(
            settings, channels=[WebchatChannel(settings.channels.webchat)], encoder=encoder, database=database
        )
        for _ in range(2)
    )
    await first.start(progress=False)
    await second.start(progress=False)
    try:
        async with (
            LiveServer(create_app(first, start=False)) as one,
            LiveServer(create_app(second, start=False)) as two,
            http_client(one.url) as a,
            http_client(two.url) as b,
        ):
            assert first.limiter is not second.limiter
            yield first, a, b
    finally:
        for bot in (first, second):
            await desk_of(bot).close()
            await bot.limiter.close()
            bot.executor.shutdown(wait=False)


async def test_the_web_chat_limit_is_shared_through_redis(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder, redis_prefix: str
) -> None:
    """Two services, each with its own Redis connection, count one visitor's messages together."""
    settings = make_settings(
        channels={"webchat": {"rate_limit_per_minute": 3}}, redis=redis_settings(redis_prefix)
    )
    headers = {"X-Visitor-Id": f"v-{uuid.uuid4().hex}"}
    async with two_services(settings, database, encoder) as (_, a, b):
        for client in (a, b, a):
            sent = await client.post("/api/v1/webchat/messages", json={"text": "hello"}, headers=headers)
            assert sent.status_code == 200, sent.text
        for client in (b, a):
            limited = await client.post("/api/v1/webchat/messages", json={"text": "more"}, headers=headers)
            assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
        other = {"X-Visitor-Id": f"v-{uuid.uuid4().hex}"}
        assert (
            await b.post("/api/v1/webchat/messages", json={"text": "hi"}, headers=other)
        ).status_code == 200


async def test_in_process_limits_are_per_process(
    make_settings: Callable[..., Settings], database: Database, encoder: E5Encoder
) -> None:
    """The default: without redis.url each service counts on its own (why Redis is there)."""
    settings = make_settings(channels={"webchat": {"rate_limit_per_minute": 2}})
    assert settings.redis.url is None and isinstance(make_limiter(settings), MemoryLimiter)
    headers = {"X-Visitor-Id": f"v-{uuid.uuid4().hex}"}
    async with two_services(settings, database, encoder) as (_, a, b):
        codes = [
            (await c.post("/api/v1/webchat/messages", json={"text": "hi"}, headers=headers)).status_code
            for c in (a, a, a, b)
        ]
    assert codes == [200, 200, 429, 200]


async def test_events_open_with_a_single_use_ticket_never_a_token_in_the_url(desk_bot: SupportBot) -> None:
    await make_agent(desk_bot.database, "anna")
    await make_agent(desk_bot.database, "root", role="admin")
    async with LiveServer(create_app(desk_bot, start=False)) as server, http_client(server.url) as client:
        assert (await client.post("/api/v1/events/ticket")).status_code == 401
        anna = await Api.login(client, "anna")

        # a bearer token in the URL is refused (even a valid one), with the way out in the message
        in_url = await client.get("/api/v1/events", params={"token": anna.token})
        assert in_url.status_code == 401 and "ticket" in in_url.json()["detail"]["message"]

        issued = await anna.ok("POST", "/events/ticket")
        assert issued["expires_in"] == 1 and issued["ticket"] != anna.token
        assert (
            await Api(client, issued["ticket"]).call("GET", "/agents/me")
        ).status_code == 401  # not a token

        async with client.stream("GET", "/api/v1/events", params={"ticket": issued["ticket"]}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            await anna.ok("PUT", "/agents/me/status", json={"status": "online"})  # an event for anna
            seen: list[str] = []
            async with asyncio.timeout(10):
                async for line in lines:
                    seen.append(line)
                    if line.startswith("data: ") and '"agent_status"' in line:
                        break
            assert any(line.startswith("id: ") for line in seen)

        again = await client.get("/api/v1/events", params={"ticket": issued["ticket"]})  # used up
        assert again.status_code == 401 and "already used" in again.json()["detail"]["message"]

        stale = await anna.ok("POST", "/events/ticket")
        await asyncio.sleep(1.2)  # events_ticket_seconds is 1 here
        assert (await client.get("/api/v1/events", params={"ticket": stale["ticket"]})).status_code == 401

        # the console's way still works: the token in a header
        async with client.stream("GET", "/api/v1/events", headers=anna.headers) as stream:
            assert stream.status_code == 200

        # a password change (which ends every session of the agent) ends unused tickets too
        late = await anna.ok("POST", "/events/ticket")
        root = await Api.login(client, "root")
        await root.ok("PATCH", "/agents/anna", json={"password": "a brand new secret"})
        assert (await client.get("/api/v1/events", params={"ticket": late["ticket"]})).status_code == 401


async def _until_closed(lines: AsyncIterator[str]) -> list[str]:
    """Read a stream to its end (the server closed it); fail if it is still open after 10 s."""
    async with asyncio.timeout(10):
        return [line async for line in lines]


async def test_an_open_event_stream_ends_with_its_session(bot: SupportBot) -> None:
    """Log-out ends that session's streams (ticket or header), not the agent's other sessions; so does
    deactivation, for every session; a ticket issued under a session that has ended opens nothing."""
    await make_agent(bot.database, "anna")
    await make_agent(bot.database, "root", role="admin")
    async with LiveServer(create_app(bot, start=False)) as server, http_client(server.url) as client:
        laptop, phone = await Api.login(client, "anna"), await Api.login(client, "anna")
        ticket = (await laptop.ok("POST", "/events/ticket"))["ticket"]
        spare = (await laptop.ok("POST", "/events/ticket"))["ticket"]
        async with (
            client.stream("GET", "/api/v1/events", params={"ticket": ticket}) as by_ticket,
            client.stream("GET", "/api/v1/events", headers=phone.headers) as by_header,
        ):
            assert by_ticket.status_code == by_header.status_code == 200
            ticket_lines, header_lines = by_ticket.aiter_lines(), by_header.aiter_lines()
            assert await anext(ticket_lines) == await anext(header_lines) == "retry: 2000"

            await laptop.ok("POST", "/auth/logout")
            await _until_closed(ticket_lines)  # the laptop's session is over, and so is its stream
            refused = await client.get("/api/v1/events", params={"ticket": spare})
            assert refused.status_code == 401  # issued under the laptop's session: worth nothing now

            await phone.ok("PUT", "/agents/me/status", json={"status": "online"})  # the phone's goes on
            async with asyncio.timeout(10):
                async for line in header_lines:
                    if line.startswith("data: ") and '"agent_status"' in line:
                        break

            root = await Api.login(client, "root")
            await root.ok("PATCH", "/agents/anna", json={"active": False})
            await _until_closed(header_lines)  # deactivated: every session of anna's ends


async def test_the_desk_worker_deletes_expired_and_revoked_tokens_and_tickets(bot: SupportBot) -> None:
    desk = desk_of(bot)
    anna = await make_agent(bot.database, "anna")
    async with bot.database.session() as session:
        repo = AgentRepository(session)
        kept, _ = await repo.issue_token(anna, timedelta(hours=12))
        logged_in = await repo.session_for_token(kept)
        assert logged_in is not None
        await repo.issue_ticket(anna, timedelta(seconds=30), logged_in[1])
        left, _ = await repo.issue_token(anna, timedelta(hours=12))
        await repo.revoke_token(left)  # a log-out

    async def stored() -> int:
        async with bot.database.session() as session:
            return int((await session.execute(select(func.count()).select_from(AgentToken))).scalar_one())

    assert await stored() == 3
    start = utcnow()
    desk.clock = lambda: start + timedelta(minutes=1)  # the ticket has expired, the token has not
    await desk.timers.tick()
    assert await stored() == 1  # the ticket and the logged-out token are gone
    async with bot.database.session() as session:
        assert await AgentRepository(session).agent_for_token(kept) is not None  # the live one still works
    await desk.timers.tick(start + timedelta(hours=13))
    assert await stored() == 0


async def test_the_access_log_never_shows_tokens_tickets_or_visitor_ids(desk_bot: SupportBot) -> None:
    await make_agent(desk_bot.database, "anna")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    access = logging.getLogger("uvicorn.access")
    keep = Keep()
    you = f"v-{uuid.uuid4().hex}"
    server = LiveServer(create_app(desk_bot, start=False), log_level="info")  # configures logging
    access.addHandler(keep)
    try:
        async with server, http_client(server.url) as client:
            anna = await Api.login(client, "anna")
            ticket = (await anna.ok("POST", "/events/ticket"))["ticket"]
            await client.get("/api/v1/events", params={"token": anna.token, "after": 5})
            async with client.stream("GET", "/api/v1/events", params={"ticket": ticket}) as stream:
                assert stream.status_code == 200
            await client.post(f"/api/v1/webchat/{you}/messages", json={"text": "hello"})
            await client.post("/api/v1/webchat/messages", json={"text": "hi"}, headers={"X-Visitor-Id": you})
    finally:
        access.removeHandler(keep)
    text = "\n".join(record.getMessage() for record in records)
    assert len(records) >= 6, text
    assert anna.token is not None and anna.token not in text and ticket not in text and you not in text
    assert "/api/v1/events?token=***&after=5" in text and "/api/v1/events?ticket=***" in text
    assert "/api/v1/webchat/~" in text  # the old path form: a digest instead of the id


def test_redact_url() -> None:
    assert redact_url("/api/v1/events?token=abc&after=3") == "/api/v1/events?token=***&after=3"
    assert redact_url("/api/v1/events?TICKET=x") == "/api/v1/events?TICKET=***"
    assert redact_url("/api/v1/events?after=3") == "/api/v1/events?after=3"
    old = redact_url("/api/v1/webchat/visitor-0123456789abcdef/events?since=4")
    assert old.startswith("/api/v1/webchat/~") and old.endswith("/events?since=4") and "visitor-" not in old
    assert redact_url("/api/v1/webchat/messages?after=0") == "/api/v1/webchat/messages?after=0"


# --- the limiters themselves: one contract, two back ends --------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Limiter]:
    instance: Limiter = (
        MemoryLimiter()
        if request.param == "memory"
        else RedisLimiter(RedisSettings(**redis_settings(redis_prefix)))
    )
    yield instance
    await instance.close()


async def test_limiter_counts_all_quotas_or_none(limiter: Limiter) -> None:
    account, address = Quota("account", 2, 30), Quota("address", 3, 30)
    assert (await limiter.hit(account, address)).allowed
    assert (await limiter.hit(account, address)).allowed
    refused = await limiter.hit(account, address)  # the account is full
    assert not refused.allowed and refused.retry_after is not None and 29 <= refused.retry_after <= 30
    # the refused hit did not count against the address: one more fits there
    assert (await limiter.hit(Quota("other", 5, 30), address)).allowed
    assert not (await limiter.hit(address)).allowed

    await limiter.reset("account")
    last = await limiter.hit(account)
    assert last.allowed
    await limiter.undo(last, "account")
    assert (await limiter.hit(account)).allowed and (await limiter.hit(account)).allowed
    assert not (await limiter.hit(account)).allowed


async def test_limiter_window_slides(limiter: Limiter) -> None:
    quota = Quota("slide", 2, 0.4)
    assert (await limiter.hit(quota)).allowed and (await limiter.hit(quota)).allowed
    refused = await limiter.hit(quota)
    assert refused.retry_after is not None and 0 < refused.retry_after <= 0.4
    await asyncio.sleep(refused.retry_after + 0.05)
    assert (await limiter.hit(quota)).allowed  # the first hit has left the window


def test_memory_limiter_window_with_a_clock() -> None:
    limiter = MemoryLimiter()
    quota = Quota("a", 2, 60)
    assert limiter.hit_at(0, quota).allowed and limiter.hit_at(1, quota).allowed
    assert limiter.hit_at(2, quota).retry_after == pytest.approx(58)
    assert limiter.hit_at(60, quota).allowed  # the first hit has left the window
    assert limiter.hit_at(60.5, quota).retry_after == pytest.approx(0.5)


async def test_two_redis_limiters_share_counts_and_survive_redis_going_away(redis_prefix: str) -> None:
    one = RedisLimiter(RedisSettings(**redis_settings(redis_prefix)))
    two = RedisLimiter(RedisSettings(**redis_settings(redis_prefix)))
    quota = Quota("shared", 3, 30)
    try:
        assert [(await lim.hit(quota)).allowed for lim in (one, two, one, two)] == [True, True, True, False]
    finally:
        await one.close()
        await two.close()
    # Redis unreachable: counted in this process instead (limits still hold), never an error
    down = RedisLimiter(
        RedisSettings(url="redis://127.0.0.1:1/0", key_prefix=redis_prefix, timeout_seconds=0.2)
    )
    try:
        assert [(await down.hit(Quota("k", 2, 30))).allowed for _ in range(3)] == [True, True, False]
    finally:
        await down.close()
