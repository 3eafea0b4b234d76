"""The real `supportbot` executable, as a newcomer runs it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import SUPPORTBOT, write_config
from tests.support.paths import REPO
from tests.support.server import free_port


def chat(config: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    """`supportbot chat --json` with these customer lines on stdin."""
    return subprocess.run(
        [SUPPORTBOT, "--config", str(config), "chat", "--json"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_chat_json_answers_then_hands_off(tmp_path: Path, index_cache: Path) -> None:
    config = write_config(tmp_path, index_cache)
    done = chat(config, "Сколько идёт доставка?", "I want to talk to a human")
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["decision"] for r in replies] == ["answer", "handoff"]
    assert replies[0]["entry"] == "delivery_time" and replies[0]["state"] == "bot"
    assert "доставк" in replies[0]["text"].lower()
    assert replies[1]["state"] == "waiting"
    with sqlite3.connect(tmp_path / "var" / "bot.db") as db:  # relative to the config file's folder
        states = db.execute("SELECT state FROM conversations").fetchall()
    assert states == [("waiting",)]


def test_kb_check_passes_on_demo_content() -> None:
    done = subprocess.run(
        [SUPPORTBOT, "--config", str(REPO / "config.yaml"), "kb", "check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok:")
    assert "expected live (calibration on this content): answers" in done.stdout


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [SUPPORTBOT, "--config", str(tmp_path / "nope.yaml"), "kb", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "config file not found" in done.stderr


@pytest.mark.slow
def test_run_serves_healthz(tmp_path: Path, index_cache: Path) -> None:
    config = write_config(tmp_path, index_cache)
    port = free_port()
    process = subprocess.Popen(
        [SUPPORTBOT, "--config", str(config), "run", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "supportbot run did not answer /healthz"
            time.sleep(0.3)
        body = response.json()
        assert body["status"] == "ok" and body["database"] == "ok" and body["kb_entries"] >= 40
        calibration = body["calibration"]  # calibrated at start: what to expect live
        assert calibration["state"] == "calibrated", calibration
        assert (
            calibration["expected"]["answer_precision"] > 0.8 and calibration["expected"]["oos_recall"] > 0.5
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_kb_misses_lists_what_the_bot_could_not_answer(tmp_path: Path, index_cache: Path) -> None:
    config = write_config(tmp_path, index_cache)
    chat(config, "Сколько идёт доставка?", "what's the weather going to be like in Paris tomorrow?")
    out = tmp_path / "misses.csv"
    done = subprocess.run(
        [SUPPORTBOT, "--config", str(config), "kb", "misses", "--days", "7", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "1 distinct questions missed (1 messages) in the last 7 days" in done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "text,intent,lang,count,kind,reason,bot_entry,score,last_seen"
    assert lines[1].startswith("what's the weather going to be like in Paris tomorrow?,,en,1,fallback,")
