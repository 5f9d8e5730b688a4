"""Per-user fairness on the completion routes: one token cannot slow everyone else down.

Two checks run after authentication, before any work:

- a **rate limit**: a token bucket per user token subject (`user_rate` requests a second,
  bursts of `user_burst`) and one per instance (`instance_rate`/`instance_burst`, counting
  both paths); a request over it gets `429` with `Retry-After` and costs nothing more;
- a **concurrency cap**: at most `user_concurrency` requests of one user (or, on the monolith
  path, of one instance) in flight on this replica; one more gets `429` at once, so a client's
  burst waits on the client, not in front of other users' requests.

The check is a few dict lookups and float operations (a few microseconds).
With `redis_url`, replicas share the buckets without a Redis call on the request path: each
replica counts what it admitted and, every `sync_interval` seconds in the background, adds its
counts to per-window counters in Redis and debits what the other replicas admitted from its own
buckets. A user spread over N replicas can therefore exceed the rate by at most what N replicas
admit within one sync interval (plus one burst each at first sight). If Redis fails, the
buckets stay local (logged) and requests are unaffected.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from codesuggest.common.logs import get_logger
from codesuggest.common.tasks import cancel
from codesuggest.gateway.errors import GatewayError

if TYPE_CHECKING:
    from codesuggest.gateway.caller import Caller

log = get_logger("codesuggest.gateway.fairness")

TOO_MANY = "Too many requests. Please try again later."
MAX_KEYS = 100_000
"""Buckets kept per kind before full (idle) ones are dropped."""


class FairnessSettings(BaseModel):
    """`CODESUGGEST_GATEWAY_FAIRNESS__<FIELD>`; docs/gateway.md lists the defaults and why."""

    enabled: bool = True
    user_rate: float = Field(default=10.0, gt=0)
    """Sustained completions per second per user; a fast typist needs about 3."""
    user_burst: int = Field(default=40, ge=1)
    instance_rate: float = Field(default=500.0, gt=0)
    instance_burst: int = Field(default=1000, ge=1)
    user_concurrency: int = Field(default=4, ge=1)
    redis_url: str | None = None
    redis_prefix: str = "codesuggest:gateway:"
    sync_interval: float = Field(default=0.25, gt=0)


class TokenBuckets:
    """Token buckets by key: `rate` tokens a second up to `burst`; a request takes one."""

    __slots__ = ("burst", "rate", "state")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.state: dict[str, list[float]] = {}  # key -> [tokens, updated]

    def take(self, key: str, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        entry = self.state.get(key)
        if entry is None:
            if len(self.state) >= MAX_KEYS:
                self._drop_full(now)
            entry = self.state[key] = [self.burst, now]
        tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
        entry[1] = now
        if tokens >= 0.999999:  # a token refilled to 1 within float rounding counts as one
            entry[0] = tokens - 1.0
            return 0.0
        entry[0] = tokens
        return (1.0 - tokens) / self.rate

    def debit(self, key: str, count: float, now: float) -> None:
        """Take `count` tokens admitted elsewhere (never below one burst of debt)."""
        entry = self.state.get(key)
        if entry is None:
            entry = self.state[key] = [self.burst, now]
        tokens = min(self.burst, entry[0] + (now - entry[1]) * self.rate)
        entry[0] = max(-self.burst, tokens - count)
        entry[1] = now

    def _drop_full(self, now: float) -> None:
        refill = self.burst / self.rate
        self.state = {k: v for k, v in self.state.items() if now - v[1] < refill}


class Ticket:
    """A request's place among its user's in-flight requests; `release` exactly once."""

    __slots__ = ("fairness", "key")

    def __init__(self, fairness: Fairness, key: str | None) -> None:
        self.fairness = fairness
        self.key = key

    def release(self) -> None:
        key, self.key = self.key, None
        if key is not None:
            self.fairness.leave(key)

    def release_after(self, response: Response) -> Response:
        """`response`, releasing the ticket once it is sent (a stream: to its end) or the
        client has gone, whichever comes first."""
        if self.key is None:
            return response
        return _Releasing(response, self)


class _Releasing(Response):
    """Sends `inner` as it is, then releases the ticket (even when the client left early)."""

    def __init__(self, inner: Response, ticket: Ticket) -> None:
        self.inner = inner
        self.ticket = ticket
        self.status_code = inner.status_code
        self.raw_headers = inner.raw_headers
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.ticket.release()
        if self.background is not None:
            await self.background()


class Fairness:
    def __init__(
        self, settings: FairnessSettings, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.now = now
        self.users = TokenBuckets(settings.user_rate, settings.user_burst)
        self.instances = TokenBuckets(settings.instance_rate, settings.instance_burst)
        self.in_flight: dict[str, int] = {}
        self.refused: dict[str, float] = {}  # Authorization header -> refused until
        self.shared = SharedBuckets(settings, self) if settings.redis_url else None

    def refuse_known(self, authorization: str | None) -> None:
        """Before verifying a token: a token refused for its rate moments ago is refused again
        at once, so a flood of refused requests costs no signature checks."""
        if authorization is None or not self.refused:
            return
        until = self.refused.get(authorization)
        if until is not None:
            wait = until - self.now()
            if wait > 0:
                raise _too_many(wait)
            del self.refused[authorization]

    def admit(self, caller: Caller, authorization: str | None = None) -> Ticket:
        """Raises GatewayError(429) when `caller` is over its rate or concurrency."""
        if not self.settings.enabled:
            return Ticket(self, None)
        now = self.now()
        user = (
            f"{caller.claims.get('iss')}|{caller.claims['sub']}" if caller.is_user_token else None
        )
        instance = caller.instance_id
        wait = self.users.take(user, now) if user is not None else 0.0
        if wait == 0.0 and instance is not None:
            wait = self.instances.take(instance, now)
        if wait > 0.0:
            if authorization is not None:
                if len(self.refused) >= MAX_KEYS:
                    self.refused.clear()
                self.refused[authorization] = now + wait
            raise _too_many(wait)
        if self.shared is not None:
            self.shared.spent(user, instance)
        key = user or instance
        if key is None:
            return Ticket(self, None)
        count = self.in_flight.get(key, 0)
        if count >= self.settings.user_concurrency:
            raise _too_many(1.0)
        self.in_flight[key] = count + 1
        return Ticket(self, key)

    def leave(self, key: str) -> None:
        count = self.in_flight.get(key, 0) - 1
        if count > 0:
            self.in_flight[key] = count
        else:
            self.in_flight.pop(key, None)

    async def start(self) -> None:
        if self.shared is not None:
            self.shared.start()

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()


def _too_many(wait: float) -> GatewayError:
    return GatewayError(429, {"detail": TOO_MANY}, {"Retry-After": str(max(1, math.ceil(wait)))})


class SharedBuckets:
    """Reconciles a replica's buckets with the other replicas' through Redis, off the request
    path (see the module docstring). Counters are per subject and per window of one refill
    time, so what is debited is recent."""

    def __init__(self, settings: FairnessSettings, fairness: Fairness) -> None:
        assert settings.redis_url is not None
        self.redis = aioredis.from_url(
            settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.prefix = settings.redis_prefix + "fair:"
        self.interval = settings.sync_interval
        self.fairness = fairness
        self.pending: dict[tuple[str, str], int] = {}
        self.seen: dict[tuple[str, str, int], int] = {}  # (kind, key, window) -> total seen
        self.task: asyncio.Task[None] | None = None
        self.failing = False

    def spent(self, user: str | None, instance: str | None) -> None:
        if user is not None:
            self.pending[("u", user)] = self.pending.get(("u", user), 0) + 1
        if instance is not None:
            self.pending[("i", instance)] = self.pending.get(("i", instance), 0) + 1

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        await cancel(self.task)
        await self.redis.aclose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    def _window(self, kind: str) -> float:
        buckets = self.fairness.users if kind == "u" else self.fairness.instances
        return max(self.interval * 4, buckets.burst / buckets.rate)

    async def sync(self) -> None:
        """Add this replica's counts to Redis and debit the other replicas' from the buckets."""
        pending, self.pending = self.pending, {}
        if not pending:
            return
        wall = time.time()
        keys = []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (kind, key), count in pending.items():
                    window = self._window(kind)
                    index = int(wall // window)
                    name = f"{self.prefix}{kind}:{key}:{index}"
                    pipe.incrby(name, count)
                    pipe.expire(name, math.ceil(window * 2))
                    keys.append((kind, key, index, count))
                replies = await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            if not self.failing:
                log.warning("fairness store unavailable, buckets stay local", error=str(exc))
            self.failing = True
            return
        self.failing = False
        now = self.fairness.now()
        for (kind, key, index, count), total in zip(keys, replies[::2], strict=True):
            before = self.seen.pop((kind, key, index), None)
            others = int(total) - count - (before if before is not None else 0)
            self.seen[(kind, key, index)] = int(total)
            if others > 0:
                buckets = self.fairness.users if kind == "u" else self.fairness.instances
                buckets.debit(key, others, now)
        if len(self.seen) > MAX_KEYS:
            self.seen.clear()
