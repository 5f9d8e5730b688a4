"""Per-user request limits over a moving one-minute window (the `limits` library).

A moving window counts the requests of the last 60 seconds, so no burst slips through at a
minute boundary (a fixed window let twice the limit through within a few seconds). With a Redis
URL the window lives in Redis, so every instance process behind a load balancer shares it;
otherwise it lives in this process. While Redis is down a limited request is answered 503 with
`Retry-After` (a limit counted per process would let N processes through N times over). The
window runs on wall-clock time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from codesuggest.common.logs import get_logger
from codesuggest.instance.errors import unavailable

log = get_logger("codesuggest.instance.ratelimit")
WINDOW = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int
    """Whole seconds until the next request would be allowed (at least 1)."""


class RateLimiter(Protocol):
    async def hit(self, name: str, subject: str, limit: int) -> Decision: ...

    async def aclose(self) -> None: ...


class MovingWindowLimiter:
    """`limit` requests per `subject` in any `window` seconds, in `storage`."""

    def __init__(self, storage: Storage, window: int = WINDOW) -> None:
        self.storage = storage
        self.window = window
        self.strategy = MovingWindowRateLimiter(storage)

    async def hit(self, name: str, subject: str, limit: int) -> Decision:
        item = RateLimitItemPerSecond(limit, self.window)
        if await self.strategy.hit(item, name, subject):
            return Decision(allowed=True, retry_after=1)
        stats = await self.strategy.get_window_stats(item, name, subject)
        wait = math.ceil(stats.reset_time - time.time())
        return Decision(allowed=False, retry_after=max(1, wait))

    async def aclose(self) -> None:
        return None


class MemoryRateLimiter(MovingWindowLimiter):
    def __init__(self, window: int = WINDOW) -> None:
        super().__init__(MemoryStorage(), window)


class RedisRateLimiter(MovingWindowLimiter):
    """The moving window in Redis under `<prefix>rl`; if Redis fails, raises the instance's 503
    (one log line)."""

    def __init__(self, url: str, prefix: str, timeout: float = 2.0, window: int = WINDOW) -> None:
        uri = url if url.startswith("async+") else "async+" + url
        storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=f"{prefix}rl",
            wrap_exceptions=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        super().__init__(storage, window)

    async def hit(self, name: str, subject: str, limit: int) -> Decision:
        try:
            return await super().hit(name, subject, limit)
        except StorageError as exc:  # the library wraps every Redis error in this type
            log.warning("redis unavailable", call="rate limit", error=type(exc).__name__)
            raise unavailable(
                "The rate-limit store (Redis) is unavailable. Try again later.", "redis_unavailable"
            ) from None


def make_rate_limiter(redis_url: str | None, prefix: str, timeout: float) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, prefix, timeout)
    return MemoryRateLimiter()
