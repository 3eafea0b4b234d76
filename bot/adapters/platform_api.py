"""Calling a platform's HTTP API: every failure becomes a SendError saying whether, and when, to retry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.errors import RateLimited, SendError


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the seconds a Retry-After header asks us to wait (a number or an HTTP date); None without."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def transient_status(status: int) -> bool:
    """Return whether an HTTP status means "try again later": 408, 429 and 5xx."""
    return status in (408, 429) or status >= 500


def send_error(message: str, *, transient: bool, retry_after: float | None = None) -> SendError:
    """Return the error the outbox acts on: RateLimited when told how long to wait, else retried or not."""
    if transient and retry_after is not None:
        return RateLimited(message, retry_after=retry_after)
    return SendError(message, retry_after=retry_after, permanent=not transient)


class PlatformClient:
    """POSTs JSON to a platform's HTTP API; a timeout, a network fault or an error answer raises SendError."""

    def __init__(
        self,
        platform: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        error: Callable[[httpx.Response], SendError] | None = None,
    ) -> None:
        """`platform` names the API in errors; `error` translates an answer >= 400 (default: by status)."""
        self.platform = platform
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=dict(headers or {}), timeout=httpx.Timeout(timeout)
        )
        self._error = error or self.status_error

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST `body` as JSON to `path`; return the answer's JSON ({} when it has none). Raise SendError."""
        try:
            response = await self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise SendError(f"{self.platform} timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise SendError(f"{self.platform} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise self._error(response)
        try:
            return response.json()
        except ValueError:
            return {}

    def status_error(self, response: httpx.Response) -> SendError:
        """Return the SendError of an error answer judged by its HTTP status and Retry-After alone."""
        text = f"{self.platform} HTTP {response.status_code}: {response.text[:300] or response.reason_phrase}"
        return send_error(
            text, transient=transient_status(response.status_code), retry_after=retry_after(response.headers)
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()
