"""Sliding-window rate limits: in this process by default, shared by every process through Redis.

A `Quota` is "at most `limit` hits under `key` in the last `window` seconds". `Limiter.hit` checks several
quotas at once and counts the hit under all of them only if none is full (so a refused attempt never
counts, and one quota cannot fill up while another refuses); otherwise it returns how long to wait.
The agent log-in (bot/handoff/api/auth.py) and the web chat (bot/adapters/webchat.py) use it.

`make_limiter(settings)` picks the back end: `MemoryLimiter` unless `redis.url` is set. `RedisLimiter`
keeps each key as a sorted set of hit times (Redis's own clock, so processes on several hosts agree) and
does the check-and-count in one Lua script, so concurrent processes never overshoot. When Redis does not
answer, it counts in-process (and says so in the log, at most once a minute) rather than refusing
everyone or letting everyone through.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any

from bot.config import RedisSettings, Settings

log = logging.getLogger(__name__)

MAX_IDLE_KEYS = 10_000  # the memory limiter forgets keys that have been quiet for their window beyond this


@dataclass(frozen=True)
class Quota:
    key: str
    limit: int
    window: float  # seconds


@dataclass(frozen=True)
class Hit:
    """The outcome of `Limiter.hit`: counted (retry_after None) or refused for retry_after seconds."""

    retry_after: float | None
    stamp: str  # identifies this hit, so `undo` can take it back

    @property
    def allowed(self) -> bool:
        return self.retry_after is None

    @property
    def retry_seconds(self) -> int:
        """Whole seconds to wait, for a Retry-After header and the message (at least 1; 0 when allowed)."""
        return 0 if self.retry_after is None else max(1, math.ceil(self.retry_after))


def digest(value: str) -> str:
    """A short stable stand-in for a secret-ish key part (a visitor id) in keys and logs."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


class Limiter(ABC):
    """Count hits against quotas; see the module docstring."""

    backend = "memory"

    @abstractmethod
    async def hit(self, *quotas: Quota) -> Hit:
        """Count one hit under every quota if none is full; else count nothing and say how long to wait."""

    @abstractmethod
    async def undo(self, hit: Hit, *keys: str) -> None:
        """Take back a counted hit from these keys (e.g. a successful log-in from the address's count)."""

    @abstractmethod
    async def reset(self, *keys: str) -> None:
        """Forget every hit under these keys (e.g. a successful log-in clears the account's failures)."""

    async def close(self) -> None:
        return None


class MemoryLimiter(Limiter):
    """Per process: each `supportbot run` process counts on its own."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[tuple[float, str]]] = {}
        self._windows: dict[str, float] = {}

    def _prune(self, now: float) -> None:
        if len(self._hits) <= MAX_IDLE_KEYS:
            return
        self._hits = {
            key: hits
            for key, hits in self._hits.items()
            if hits and now - hits[-1][0] < self._windows.get(key, 0.0)
        }
        self._windows = {key: self._windows[key] for key in self._hits}

    def _current(self, quota: Quota, now: float) -> deque[tuple[float, str]]:
        hits = self._hits.setdefault(quota.key, deque())
        self._windows[quota.key] = max(self._windows.get(quota.key, 0.0), quota.window)
        while hits and now - hits[0][0] >= quota.window:
            hits.popleft()
        return hits

    def hit_at(self, now: float, *quotas: Quota) -> Hit:
        """`hit` at a given clock reading (for tests); no await, so it is atomic within the process."""
        self._prune(now)
        stamp = uuid.uuid4().hex
        wait = 0.0
        for quota in quotas:
            hits = self._current(quota, now)
            if len(hits) >= quota.limit:
                wait = max(wait, quota.window - (now - hits[-quota.limit][0]))
        if wait > 0:
            return Hit(wait, stamp)
        for quota in quotas:
            self._hits[quota.key].append((now, stamp))
        return Hit(None, stamp)

    async def hit(self, *quotas: Quota) -> Hit:
        return self.hit_at(self._clock(), *quotas)

    async def undo(self, hit: Hit, *keys: str) -> None:
        for key in keys:
            hits = self._hits.get(key)
            if hits:
                self._hits[key] = deque(entry for entry in hits if entry[1] != hit.stamp)

    async def reset(self, *keys: str) -> None:
        for key in keys:
            self._hits.pop(key, None)
            self._windows.pop(key, None)


# KEYS: one sorted set per quota. ARGV: stamp, then limit and window (ms) per key.
# Returns -1 when the hit was counted, else the milliseconds until the fullest quota has room.
_HIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local edge = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local until_free = tonumber(edge[2]) + window - now
    if until_free > wait then wait = until_free end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return -1
"""


class RedisLimiter(Limiter):
    """Shared by every process that points at the same Redis (and key prefix)."""

    backend = "redis"

    def __init__(self, settings: RedisSettings, fallback: MemoryLimiter | None = None) -> None:
        import redis.asyncio as redis

        assert settings.url, "RedisLimiter needs redis.url"
        self.prefix = settings.key_prefix
        self.client = redis.Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
        )
        self._script = self.client.register_script(_HIT_SCRIPT)
        self.fallback = fallback or MemoryLimiter()
        self._warned_at: float | None = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}ratelimit:{key}"

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("rate limits: Redis is not answering (%s); counting in this process meanwhile", exc)

    async def hit(self, *quotas: Quota) -> Hit:
        from redis.exceptions import RedisError

        stamp = uuid.uuid4().hex
        args: list[Any] = [stamp]
        for quota in quotas:
            args += [quota.limit, max(1, round(quota.window * 1000))]
        try:
            wait_ms = int(await self._script(keys=[self._key(q.key) for q in quotas], args=args))
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return await self.fallback.hit(*quotas)
        return Hit(None if wait_ms < 0 else wait_ms / 1000, stamp)

    async def undo(self, hit: Hit, *keys: str) -> None:
        from redis.exceptions import RedisError

        await self.fallback.undo(hit, *keys)
        try:
            for key in keys:
                await self.client.zrem(self._key(key), hit.stamp)
        except (RedisError, OSError) as exc:
            self._unavailable(exc)

    async def reset(self, *keys: str) -> None:
        from redis.exceptions import RedisError

        await self.fallback.reset(*keys)
        if not keys:
            return
        try:
            await self.client.delete(*(self._key(key) for key in keys))
        except (RedisError, OSError) as exc:
            self._unavailable(exc)

    async def close(self) -> None:
        await self.client.aclose()


def make_limiter(settings: Settings) -> Limiter:
    """Redis when `redis.url` is set, else in-process."""
    if settings.redis.url:
        return RedisLimiter(settings.redis)
    return MemoryLimiter()
