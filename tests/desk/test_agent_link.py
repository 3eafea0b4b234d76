"""Linking agents to their Telegram accounts: `supportbot agents add --telegram-user-id`, the agent API."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import cli
from tests.support.desk import DeskRig, linked_agent
from tests.support.handoff import PASSWORD, Api


def test_agents_add_links_a_telegram_account(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/bot.db'}}\n", encoding="utf-8")
    runner = CliRunner()
    base = ["--config", str(config), "agents", "add", "--password", PASSWORD]
    added = runner.invoke(cli, [*base, "--login", "olga", "--telegram-user-id", "55501"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["telegram_user_id"] == 55501
    taken = runner.invoke(cli, [*base, "--login", "oleg", "--telegram-user-id", "55501"])
    assert taken.exit_code != 0 and "already linked to agent 'olga'" in str(
        taken.exception
    )  # main() prints it
    listed = runner.invoke(cli, ["--config", str(config), "agents", "list"])
    assert [json.loads(line)["telegram_user_id"] for line in listed.output.splitlines()] == [55501]


async def test_admins_link_and_unlink_agents_through_the_api(desk_rig: DeskRig) -> None:
    await linked_agent(desk_rig.bot, "root", 55500, role="admin")
    admin = await Api.login(desk_rig.http, "root")
    body = {"login": "olga", "password": PASSWORD, "telegram_user_id": 55501}
    created = await admin.ok("POST", "/agents", json=body)
    assert created["telegram_user_id"] == 55501
    clash = await admin.call("POST", "/agents", json={**body, "login": "oleg"})
    assert clash.status_code == 409 and "already linked" in clash.json()["detail"]["message"]
    moved = await admin.ok("PATCH", "/agents/olga", json={"telegram_user_id": 55502})
    assert moved["telegram_user_id"] == 55502
    kept = await admin.ok("PATCH", "/agents/olga", json={"capacity": 2})
    assert kept["telegram_user_id"] == 55502
    unlinked = await admin.ok("PATCH", "/agents/olga", json={"telegram_user_id": None})
    assert unlinked["telegram_user_id"] is None
