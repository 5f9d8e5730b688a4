"""Per-user request limits in fixed one-minute windows.

With a Redis URL the counters live in Redis, so every instance process behind a load balancer
shares them; otherwise they live in this process. Windows come from the injectable clock.
While Redis is down a limited request is answered 503 with `Retry-After` (a limit counted per
process would let N processes through N times over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from codesuggest.common.logs import get_logger
from codesuggest.instance.errors import unavailable
from codesuggest.tokens import Clock

log = get_logger("codesuggest.instance.ratelimit")
WINDOW = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int
    """Whole seconds until the window resets (at least 1)."""


class RateLimiter(Protocol):
    async def hit(self, name: str, subject: str, limit: int) -> Decision: ...

    async def aclose(self) -> None: ...


def _window(clock: Clock) -> tuple[int, int]:
    now = clock.now()
    index = int(now // WINDOW)
    retry_after = max(1, math.ceil((index + 1) * WINDOW - now))
    return index, retry_after


class MemoryRateLimiter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    async def hit(self, name: str, subject: str, limit: int) -> Decision:
        index, retry_after = _window(self.clock)
        window, count = self._counts.get((name, subject), (index, 0))
        if window != index:
            count = 0
            if len(self._counts) > 100_000:  # drop stale windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[0] == index}
        count += 1
        self._counts[(name, subject)] = (index, count)
        return Decision(allowed=count <= limit, retry_after=retry_after)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    """INCR on `<prefix>rl:<name>:<subject>:<window>` with an expiry; if Redis fails, raises
    the instance's 503 (one log line)."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        # A refused connection fails at once; the timeouts only bound a Redis that hangs (and
        # leave room for a busy event loop, which is no outage).
        self.redis = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0)
        self.prefix = prefix
        self.clock = clock

    async def hit(self, name: str, subject: str, limit: int) -> Decision:
        index, retry_after = _window(self.clock)
        key = f"{self.prefix}rl:{name}:{subject}:{index}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW * 2)
                count, _ = await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("redis unavailable", call="rate limit", error=type(exc).__name__)
            raise unavailable(
                "The rate-limit store (Redis) is unavailable. Try again later.", "redis_unavailable"
            ) from None
        return Decision(allowed=int(count) <= limit, retry_after=retry_after)

    async def aclose(self) -> None:
        await self.redis.aclose()


def make_rate_limiter(redis_url: str | None, prefix: str, clock: Clock) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, prefix, clock)
    return MemoryRateLimiter(clock)
