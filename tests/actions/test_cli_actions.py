"""`supportbot chat --json` with the demo actions package in-process, as `make run` serves it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import SUPPORTBOT, write_config
from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def test_chat_json_answers_with_the_demo_action_from_the_configs_folder(
    tmp_path: Path, index_cache: Path
) -> None:
    config = write_config(tmp_path, index_cache)
    with config.open("a", encoding="utf-8") as out:
        out.write("actions: {package: actions}\n")
    text = config.read_text(encoding="utf-8").replace(
        "intents: {path: ", "intents: {actions: {greet: action_order_status}, path: "
    )
    config.write_text(text, encoding="utf-8")
    shutil.copytree(REPO / "actions", tmp_path / "actions")  # imported from the config file's folder
    done = subprocess.run(
        [SUPPORTBOT, "--config", str(config), "chat", "--json"],
        input="gde moi zakaz 12345\nzakaz 55555\nNW-50217\nhello\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path.parent,
    )
    assert done.returncode == 0, done.stderr
    status, unknown, asked_again, greeted = [json.loads(line) for line in done.stdout.splitlines()]
    assert status["text"].startswith("Заказ NW-12345") and "Отправлен" in status["text"]
    assert (status["entry"], status["state"]) == ("order_status", "bot")
    assert unknown["text"].startswith("Не нахожу заказ 55555")
    assert "NW-50217" in asked_again["text"] and "Доставлен" in asked_again["text"]
    assert greeted["entry"] == "greet"  # the intent is mapped to the action, which asks for the number
    assert greeted["text"].startswith("Please send me your order number")
