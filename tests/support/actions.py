"""Custom-action test kit: a started bot with actions configured, a real rasa-sdk server, a broken one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.adapters.base import Channel
from bot.app import SupportBot
from bot.config import Settings
from bot.nlu.encoders import E5Encoder
from bot.storage.database import Database
from tests.support.paths import REPO
from tests.support.server import free_port

SAMPLE_ACTIONS = "tests.support.sample_actions"
# what the tests map intents to: "hello" (greet) shows the tracker; the others are pressed as "act:/name"
INTENT_ACTIONS = {"greet": "action_show_tracker"}


@contextlib.asynccontextmanager
async def started_bot(
    settings: Settings, database: Database, encoder: E5Encoder, channel: Channel
) -> AsyncIterator[SupportBot]:
    """A started SupportBot on the demo KB with `channel`; closed (actions too) afterwards."""
    bot = SupportBot(settings, channels=[channel], encoder=encoder, database=database)
    await bot.start(progress=False)
    try:
        yield bot
    finally:
        await bot.handoff.close()
        if bot.actions is not None:
            await bot.actions.close()
        bot.executor.shutdown(wait=False)


@contextlib.contextmanager
def rasa_action_server(package: str = SAMPLE_ACTIONS) -> Iterator[str]:
    """Run `python -m rasa_sdk --actions PACKAGE` on a free loopback port; yield its webhook URL."""
    port = free_port()
    env = {**os.environ, "SANIC_HOST": "127.0.0.1", "PYTHONPATH": str(REPO)}  # loopback only
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty server never blocks on it
        process = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", package, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_healthy(process, port, log)
            yield f"http://127.0.0.1:{port}/webhook"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the action server exited: {log.read().decode()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the action server did not come up within 60 s")
        time.sleep(0.2)


def broken_action_server(answer: str) -> Starlette:
    """An action server that answers every call with `answer` ("not json", "wrong shape", "500")."""

    async def webhook(request: Request) -> Response:
        await request.body()
        if answer == "not json":
            return PlainTextResponse("<html>Bad gateway</html>")
        if answer == "wrong shape":
            return JSONResponse({"events": "SlotSet", "responses": [{"text": "x"}]})
        return JSONResponse({"error": "boom"}, status_code=500)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"]), Route("/health", health)])


def actions_settings(**actions: Any) -> dict[str, Any]:
    """make_settings overrides: the given actions section, and the tests' intent mapping."""
    return {"actions": {"package": None, **actions}, "intents": {"actions": INTENT_ACTIONS}}
