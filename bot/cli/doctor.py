"""`supportbot doctor`: check a deployment's configuration against what it points at, one line per check.

The database answers and is migrated to the newest revision; Redis answers when `redis.url` is set; each
configured channel's credentials work against its platform's API (Telegram `getMe` at `api_base`,
WhatsApp's phone number at `graph_api_base`), and Telegram's webhook is the configured one. Nothing is
changed: the doctor never migrates, never sets a webhook. The exit code is 1 when any check failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import click
import httpx

from bot.cli.context import CommandContext, pass_context
from bot.config import Settings, TelegramSettings, WhatsAppSettings

TIMEOUT = 10.0  # seconds for each check's calls


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ok, failed (with how to fix it), or only information (skipped, not configured)."""

    name: str
    status: str  # "ok", "FAIL" or "info"
    detail: str


Check = Callable[[Settings], Awaitable[list[Finding]]]


async def check_database(settings: Settings) -> list[Finding]:
    """The database answers, and its schema is at the newest migration (`supportbot run` migrates at start)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from bot.storage.database import Database, alembic_config
    from bot.web.demo_agent import sqlite_file

    where = make_url(settings.database_url).render_as_string(hide_password=True)
    file = sqlite_file(settings.database_url)
    if file is not None and not file.exists():
        return [Finding("database", "FAIL", f"{where}: no database file yet (supportbot run creates it)")]
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    database = Database(settings.database_url)
    try:
        async with database.engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except Exception as exc:
        return [Finding("database", "FAIL", f"{where}: not reachable: {type(exc).__name__}: {exc}")]
    finally:
        await database.close()
    if current != head:
        return [
            Finding(
                "database",
                "FAIL",
                f"{where}: schema at revision {current or 'none'}, the code needs {head}: start `supportbot run` "
                "once (it migrates at start)",
            )
        ]
    return [Finding("database", "ok", f"{where}: reachable, schema at the newest revision ({head})")]


async def check_redis(settings: Settings) -> list[Finding]:
    """Redis answers PING when `redis.url` is set (rate limits are shared through it)."""
    if not settings.redis.url:
        return [Finding("redis", "info", "redis.url not set: each process counts rate limits on its own")]
    import redis.asyncio as redis

    where = settings.redis.url.split("@")[-1]
    client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        await client.ping()
    except Exception as exc:
        return [Finding("redis", "FAIL", f"{where}: not reachable: {type(exc).__name__}: {exc}")]
    finally:
        await client.aclose()
    return [Finding("redis", "ok", f"{where}: answers PING")]


async def check_telegram(settings: Settings) -> list[Finding]:
    """The bot token works (getMe) and the webhook is the configured one, or none in polling mode."""
    config: TelegramSettings = settings.channels.telegram
    if not config.token:
        return []
    base = f"{config.api_base.rstrip('/')}/bot{config.token}"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        me = await _telegram_call(client, base, "getMe")
        if isinstance(me, str):
            return [
                Finding(
                    "telegram", "FAIL", f"getMe at {config.api_base}: {me} (check channels.telegram.token)"
                )
            ]
        found = [Finding("telegram", "ok", f"the token is @{me.get('username')}'s, at {config.api_base}")]
        info = await _telegram_call(client, base, "getWebhookInfo")
    if isinstance(info, str):
        return [*found, Finding("telegram webhook", "FAIL", f"getWebhookInfo: {info}")]
    return [*found, _webhook_finding(config, info)]


def _webhook_finding(config: TelegramSettings, info: dict[str, Any]) -> Finding:
    url = info.get("url") or ""
    if config.mode == "polling":
        if url:
            return Finding(
                "telegram webhook", "FAIL", f"a webhook is set ({url}) but channels.telegram.mode is polling"
            )
        return Finding("telegram webhook", "ok", "none set (polling mode)")
    if url != config.webhook_url:
        return Finding(
            "telegram webhook",
            "FAIL",
            f"Telegram has {url or 'no webhook'!r}, channels.telegram.webhook_url is {config.webhook_url!r} "
            "(supportbot run sets it at start)",
        )
    problem = info.get("last_error_message")
    pending = info.get("pending_update_count", 0)
    if problem:
        return Finding("telegram webhook", "FAIL", f"{url}: Telegram's last delivery failed: {problem}")
    return Finding("telegram webhook", "ok", f"{url} ({pending} updates pending)")


async def _telegram_call(client: httpx.AsyncClient, base: str, method: str) -> dict[str, Any] | str:
    """The call's result, or what went wrong (the URL holds the token: never shown)."""
    try:
        response = await client.get(f"{base}/{method}")
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"no answer ({type(exc).__name__})"
    if not body.get("ok"):
        return f"{response.status_code} {body.get('description', '')}".strip()
    result: dict[str, Any] = body["result"]
    return result


async def check_whatsapp(settings: Settings) -> list[Finding]:
    """The access token reads the configured phone number (Graph API); the webhook is the app's, not checked."""
    config: WhatsAppSettings = settings.channels.whatsapp
    if not (config.access_token or config.phone_number_id):
        return []
    if not (config.access_token and config.phone_number_id and config.app_secret):
        return [Finding("whatsapp", "FAIL", "set access_token, phone_number_id and app_secret together")]
    url = f"{config.graph_api_base.rstrip('/')}/{config.phone_number_id}"
    headers = {"Authorization": f"Bearer {config.access_token}"}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(url, params={"fields": "display_phone_number"}, headers=headers)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [Finding("whatsapp", "FAIL", f"{url}: no answer ({type(exc).__name__})")]
    if response.status_code != 200:
        message = (body.get("error") or {}).get("message", "") if isinstance(body, dict) else ""
        return [
            Finding(
                "whatsapp",
                "FAIL",
                f"phone number {config.phone_number_id} at {config.graph_api_base}: {response.status_code} "
                f"{message} (check channels.whatsapp.access_token and phone_number_id)",
            )
        ]
    number = body.get("display_phone_number", "?")
    return [
        Finding("whatsapp", "ok", f"phone number {config.phone_number_id} is {number}"),
        Finding("whatsapp webhook", "info", "set in the Meta app dashboard; not checkable with this token"),
    ]


CHECKS: tuple[Check, ...] = (check_database, check_redis, check_telegram, check_whatsapp)


async def examine(settings: Settings) -> list[Finding]:
    """Run every check (each bounded in time); a check that breaks is a failed check, not a crash."""
    findings: list[Finding] = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            findings += await asyncio.wait_for(check(settings), TIMEOUT * 3)
        except Exception as exc:
            findings.append(Finding(name, "FAIL", f"the check itself failed: {type(exc).__name__}: {exc}"))
    return findings


@click.command()
@pass_context
def doctor(ctx: CommandContext) -> None:
    """Check the configuration against the database, Redis and the messaging platforms; exit 1 on a failure."""
    findings = asyncio.run(examine(ctx.settings))
    for finding in findings:
        click.echo(f"{finding.status:<4} {finding.name}: {finding.detail}")
    failed = sum(1 for finding in findings if finding.status == "FAIL")
    click.echo(f"{failed} problem(s) found" if failed else "all checks passed", err=bool(failed))
    if failed:
        raise SystemExit(1)
