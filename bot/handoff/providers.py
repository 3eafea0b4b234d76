"""Context providers: small plugins that add what the shop knows about a customer to the agent's card.

A provider is an async function `fetch(customer) -> dict` (recent orders, a VIP flag...) or an HTTP
endpoint configured in config.yaml (URL template, headers, timeout). Every call is time-boxed; a failure or
a timeout is shown on the card and never blocks or breaks the handoff.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import string
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from bot.config import ContextProviderSettings
from bot.errors import ConfigError
from bot.insights import metrics
from bot.storage.models import utcnow

log = logging.getLogger(__name__)

# What a provider learns about the customer; also the fields a URL template may use.
CUSTOMER_FIELDS = ("channel", "external_id", "name", "username", "phone", "language", "conversation_id")


class ProviderError(Exception):
    """A provider answered, but not usefully (HTTP error, not JSON...)."""


class ContextProvider(ABC):
    """One source of customer context. `fetch` gets the customer's profile and returns a JSON object."""

    name: str
    timeout: float = 2.0

    @abstractmethod
    async def fetch(self, customer: dict[str, Any]) -> dict[str, Any]:
        """Return data for the card, e.g. {"orders": [...], "vip": true}."""


class CallableProvider(ContextProvider):
    """A provider from a Python async function (or a plain one, run in a thread)."""

    def __init__(
        self,
        name: str,
        function: Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]],
        timeout: float = 2.0,
    ) -> None:
        self.name = name
        self.function = function
        self.timeout = timeout

    async def fetch(self, customer: dict[str, Any]) -> dict[str, Any]:
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(customer)
        else:
            result = await asyncio.to_thread(self.function, customer)
            if inspect.isawaitable(result):
                result = await result
        return _as_object(result)


class HttpContextProvider(ContextProvider):
    """GET (or POST) a URL built from a template like https://shop/api/orders?phone={phone}."""

    def __init__(
        self,
        name: str,
        url: str,
        client: Callable[[], httpx.AsyncClient],
        headers: dict[str, str] | None = None,
        timeout: float = 2.0,
        method: str = "GET",
    ) -> None:
        self.name = name
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.method = method
        self._client = client
        _check_template(name, url)

    async def fetch(self, customer: dict[str, Any]) -> dict[str, Any]:
        values = {key: quote(str(customer.get(key) or ""), safe="") for key in CUSTOMER_FIELDS}
        url = self.url.format_map(values)
        kwargs: dict[str, Any] = {"headers": self.headers, "timeout": self.timeout}
        if self.method == "POST":
            kwargs["json"] = {key: customer.get(key) for key in CUSTOMER_FIELDS}
        response = await self._client().request(self.method, url, **kwargs)
        if response.status_code >= 400:
            raise ProviderError(f"HTTP {response.status_code} from {url.split('?')[0]}")
        try:
            return _as_object(response.json())
        except ValueError as exc:
            raise ProviderError(f"the response from {url.split('?')[0]} is not JSON") from exc


def _as_object(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    if isinstance(result, list):
        return {"items": result}
    raise ProviderError(f"a provider must return a JSON object, not {type(result).__name__}")


def _check_template(name: str, url: str) -> None:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(url) if field is not None]
    except ValueError as exc:
        raise ConfigError(f"handoff.context_providers.{name}.url: {exc}") from exc
    unknown = [field for field in fields if field not in CUSTOMER_FIELDS]
    if unknown:
        raise ConfigError(
            f"handoff.context_providers.{name}.url uses unknown field(s) {', '.join(unknown)}; "
            f"available: {', '.join(CUSTOMER_FIELDS)}"
        )


def load_callable(name: str, path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"handoff.context_providers.{name}.callable must look like package.module:function, not {path!r}"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"handoff.context_providers.{name}.callable: cannot import {path!r}: {exc}"
        ) from exc
    if not callable(target):
        raise ConfigError(f"handoff.context_providers.{name}.callable: {path!r} is not callable")
    return target


def providers_from_settings(
    configured: dict[str, ContextProviderSettings], client: Callable[[], httpx.AsyncClient]
) -> list[ContextProvider]:
    providers: list[ContextProvider] = []
    for name, spec in configured.items():
        if not spec.enabled:
            continue
        if spec.url:
            providers.append(
                HttpContextProvider(name, spec.url, client, spec.headers, spec.timeout, spec.method)
            )
        elif spec.callable:
            providers.append(CallableProvider(name, load_callable(name, spec.callable), spec.timeout))
    return providers


async def _fetch_one(provider: ContextProvider, customer: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(provider.fetch(customer), timeout=provider.timeout)
    except TimeoutError:
        error = f"timed out after {provider.timeout:g} s"
    except httpx.TimeoutException:
        error = f"timed out after {provider.timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    except ProviderError as exc:
        error = str(exc)[:300]
    except Exception as exc:  # a plugin's bug must not break the handoff
        log.exception("context provider %s failed", provider.name)
        error = f"{type(exc).__name__}: {exc}"[:300]
    else:
        metrics.provider_call(provider.name, time.monotonic() - started, ok=True)
        return {
            "status": "ok",
            "data": data,
            "elapsed_ms": round((time.monotonic() - started) * 1000),
            "fetched_at": utcnow().isoformat(),
        }
    log.warning("context provider %s: %s", provider.name, error)
    metrics.provider_call(provider.name, time.monotonic() - started, ok=False)
    return {
        "status": "error",
        "error": error,
        "elapsed_ms": round((time.monotonic() - started) * 1000),
        "fetched_at": utcnow().isoformat(),
    }


async def fetch_all(
    providers: Sequence[ContextProvider], customer: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Ask every provider at once; each answer or error comes back within that provider's timeout."""
    results = await asyncio.gather(*(_fetch_one(provider, customer) for provider in providers))
    return {provider.name: result for provider, result in zip(providers, results, strict=True)}


def is_vip(results: dict[str, dict[str, Any]]) -> bool:
    """True when any provider said the customer is a VIP (`"vip": true` at the top of its data)."""
    return any(
        result.get("status") == "ok" and result.get("data", {}).get("vip") is True
        for result in results.values()
    )
