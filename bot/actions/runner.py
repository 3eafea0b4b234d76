"""Where actions run: a rasa-sdk action server over its webhook, or rasa-sdk's executor in this process."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from bot.config import ActionsSettings
from bot.errors import ConfigError, SupportBotError

log = logging.getLogger(__name__)
T = TypeVar("T")


class ActionFailed(SupportBotError):
    """An action gave no usable answer: unreachable, too slow, raised, or answered malformed JSON."""


@dataclass(frozen=True)
class ActionResult:
    """What an action returned: rasa-sdk's `events` and `responses`, both lists of dicts."""

    events: list[dict[str, Any]]
    responses: list[dict[str, Any]]


class ActionRunner(Protocol):
    """Runs one action call (the webhook request dict); raises ActionFailed, never anything else."""

    where: str  # for log lines and /healthz: the URL or "package NAME"

    async def start(self) -> None: ...

    async def run(self, call: dict[str, Any]) -> ActionResult: ...

    async def names(self) -> set[str] | None:
        """Return the registered action names (None when they cannot be listed right now)."""
        ...

    async def health(self) -> str:
        """Return "ok", or what is wrong, for /healthz."""
        ...

    async def close(self) -> None: ...


def parse_result(body: Any) -> ActionResult:
    """Read a rasa-sdk answer with rasa-sdk's own model; raise ActionFailed when it is malformed."""
    from pydantic import ValidationError
    from rasa_sdk.executor import ActionExecutorRunResult

    if body is None:
        return ActionResult([], [])  # rasa-sdk answers null to a call without an action name
    try:
        result = ActionExecutorRunResult.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the answer"
        raise ActionFailed(f"malformed answer: {where}: {problem['msg']}") from exc
    return ActionResult(result.events, result.responses)


def configured_runner(settings: ActionsSettings, base_dir: Path) -> ActionRunner | None:
    """Return the runner actions.url or actions.package names, or None when neither is set."""
    if settings.url:
        return ActionServer(settings.url, settings.timeout_seconds)
    if settings.package:
        return InProcessActions(settings.package, settings.timeout_seconds, base_dir)
    return None


class ActionServer:
    """A rasa-sdk action server (`python -m rasa_sdk --actions my_actions`): POST the call to its webhook."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url = url
        self.where = url
        self.timeout = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def sibling(self, path: str) -> str:
        """Return the server's /health or /actions next to its /webhook."""
        base = self.url.rstrip("/")
        base = base[: -len("/webhook")] if base.endswith("/webhook") else base
        return f"{base}/{path}"

    async def start(self) -> None:
        health = await self.health()
        if health != "ok":  # not fatal: the server may come up later, and failures are handled per message
            log.warning("custom actions: the action server at %s is not reachable yet (%s)", self.url, health)

    async def run(self, call: dict[str, Any]) -> ActionResult:
        action = str(call.get("next_action"))
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http().post(self.url, json=call)
        except TimeoutError as exc:
            raise ActionFailed(f"no answer from the action server within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise ActionFailed(
                f"action server unreachable at {self.url}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise ActionFailed(_http_error(response, action))
        try:
            body = response.json()
        except ValueError as exc:
            raise ActionFailed(f"malformed answer: not JSON: {response.text[:200]!r}") from exc
        return parse_result(body)

    async def names(self) -> set[str] | None:
        try:
            response = await self._http().get(self.sibling("actions"), timeout=min(self.timeout, 2.0))
            listed = response.json()
            return {str(item["name"]) for item in listed}
        except (httpx.HTTPError, ValueError, TypeError, KeyError):
            return None

    async def health(self) -> str:
        try:
            response = await self._http().get(self.sibling("health"), timeout=min(self.timeout, 2.0))
        except httpx.HTTPError as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok" if response.status_code == 200 else f"error: HTTP {response.status_code}"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _http_error(response: httpx.Response, action: str) -> str:
    try:
        detail = str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        detail = response.text[:200]
    if response.status_code == 404:
        return f"the action server has no action {action!r} ({detail})"
    if response.status_code == 400:
        return f"the action rejected the call: {detail}"
    return f"the action server answered HTTP {response.status_code}: {detail}"


class InProcessActions:
    """rasa-sdk's own ActionExecutor over a package, on an event loop of its own thread.

    A slow or blocking action then never stalls the bot's event loop, and its timeout holds either way.
    """

    def __init__(self, package: str, timeout_seconds: float, base_dir: Path) -> None:
        self.package = package
        self.where = f"package {package}"
        self.timeout = timeout_seconds
        self._base_dir = base_dir
        self._executor: Any = None  # rasa_sdk.executor.ActionExecutor, once started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        if self._executor is None:
            self._executor = await asyncio.to_thread(self.load)

    def load(self) -> Any:
        """Import the package (from the config's folder first) and register its Action classes."""
        from rasa_sdk.executor import ActionExecutor

        folder = str(self._base_dir.resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)  # like `rasa run actions` in the project folder
        try:
            importlib.import_module(self.package)
        except ImportError as exc:
            raise ConfigError(
                f"actions.package {self.package!r} cannot be imported ({exc}); it is looked for in {folder} "
                "and the installed packages (leave actions.package empty to run without custom actions)"
            ) from exc
        executor = ActionExecutor()
        executor.register_package(self.package)  # imported above, so its sys.exit on ImportError cannot hit
        log.info("custom actions: %s from %s", ", ".join(sorted(executor.actions)) or "none", self.where)
        return executor

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="actions", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def run(self, call: dict[str, Any]) -> ActionResult:
        from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

        await self.start()
        action = str(call.get("next_action"))
        future = self._submit(self._executor.run(call))
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError as exc:
            future.cancel()
            raise ActionFailed(f"the action did not finish within {self.timeout:g} s") from exc
        except ActionNotFoundException as exc:
            raise ActionFailed(f"{self.where} has no action {action!r}") from exc
        except ActionExecutionRejection as exc:
            raise ActionFailed(f"the action rejected the call: {exc}") from exc
        except Exception as exc:
            raise ActionFailed(f"the action raised {type(exc).__name__}: {exc}") from exc
        return ActionResult(result.events, result.responses) if result is not None else ActionResult([], [])

    async def names(self) -> set[str] | None:
        await self.start()
        return set(self._executor.actions)

    async def health(self) -> str:
        return "ok" if self._executor is not None else "not loaded"

    async def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 2.0)
            if not self._thread.is_alive():
                self._loop.close()
        self._loop = None
        self._thread = None
