"""Reuse of minted user tokens: one token per user until 5 minutes before it expires, and at
most one mint per user in flight (concurrent callers wait for the same mint).

With Redis (`redis_url`) the tokens are shared by every instance process, sealed with the
instance secret, and a short Redis lock lets one process mint while the others wait for its
token; without Redis, per process. A Redis failure never fails a request: the process mints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable

import redis.asyncio as aioredis

from codesuggest.common.logs import get_logger
from codesuggest.common.sealing import Sealer, hash_secret
from codesuggest.tokens import Clock

log = get_logger("codesuggest.instance.user_tokens")

REUSE_MARGIN = 300
Minted = tuple[str, int]
"""(token, expires_at epoch seconds)"""


class SharedTokens:
    """Minted tokens in Redis under `<prefix>ujwt:<hash of key>`, expiring when reuse ends."""

    def __init__(
        self,
        url: str,
        prefix: str,
        sealer: Sealer,
        clock: Clock,
        margin: float,
        *,
        timeout: float = 2.0,
        lock_seconds: float = 5.0,
        poll_interval: float = 0.02,
    ) -> None:
        self.redis = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = prefix
        self.sealer = sealer
        self.clock = clock
        self.margin = margin
        self.lock_seconds = lock_seconds
        self.poll_interval = poll_interval

    def _name(self, key: Hashable, kind: str) -> str:
        return f"{self.prefix}{kind}:{hash_secret(json.dumps(key, default=str))}"

    async def get(self, key: Hashable) -> Minted | None:
        sealed = await self.redis.get(self._name(key, "ujwt"))
        if sealed is None:
            return None
        token, expires_at = json.loads(self.sealer.open(sealed.decode()))
        if self.clock.now() < expires_at - self.margin:
            return token, int(expires_at)
        return None

    async def put(self, key: Hashable, minted: Minted) -> None:
        ttl = int(minted[1] - self.margin - self.clock.now())
        if ttl > 0:
            sealed = self.sealer.seal(json.dumps(list(minted)))
            await self.redis.set(self._name(key, "ujwt"), sealed, ex=ttl)

    async def obtain(self, key: Hashable, mint: Callable[[], Awaitable[Minted]]) -> Minted:
        """The shared token, or mint one: with the lock, or after waiting out another process's
        lock (at most `lock_seconds`) without seeing its token."""
        lock = self._name(key, "ujwt-lock")
        if (hit := await self.get(key)) is not None:
            return hit
        locked = await self.redis.set(lock, b"1", nx=True, px=int(self.lock_seconds * 1000))
        try:
            if locked:
                # Another process may have minted, stored and unlocked between look and lock.
                if (hit := await self.get(key)) is not None:
                    return hit
            else:
                for _ in range(int(self.lock_seconds / self.poll_interval)):
                    await asyncio.sleep(self.poll_interval)
                    if (hit := await self.get(key)) is not None:
                        return hit
                    if not await self.redis.exists(lock):
                        break
            minted = await mint()
            await self.put(key, minted)
            return minted
        finally:
            if locked:
                await self.redis.delete(lock)

    async def aclose(self) -> None:
        await self.redis.aclose()


class UserTokenCache:
    def __init__(self, clock: Clock, margin: float = REUSE_MARGIN, max_entries: int = 100_000):
        self.clock = clock
        self.margin = margin
        self.max_entries = max_entries
        self.shared: SharedTokens | None = None
        self._tokens: dict[Hashable, Minted] = {}
        self._inflight: dict[Hashable, asyncio.Future[Minted]] = {}
        self.mints = 0

    def reset_inflight(self) -> None:
        """Forget futures of a previous event loop (a server restart)."""
        self._inflight.clear()

    def _fresh(self, key: Hashable) -> Minted | None:
        hit = self._tokens.get(key)
        if hit is not None and self.clock.now() < hit[1] - self.margin:
            return hit
        return None

    async def get(self, key: Hashable, mint: Callable[[], Awaitable[Minted]]) -> Minted:
        hit = self._fresh(key)
        if hit is not None:
            return hit
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._obtain(key, mint))
            self._inflight[key] = future
        # shield: a caller that goes away must not cancel the mint the others wait for
        return await asyncio.shield(future)

    async def _counted(self, mint: Callable[[], Awaitable[Minted]]) -> Minted:
        self.mints += 1
        return await mint()

    async def _obtain(self, key: Hashable, mint: Callable[[], Awaitable[Minted]]) -> Minted:
        try:
            minted: Minted | None = None
            if self.shared is not None:
                minted = await self._obtain_shared(self.shared, key, mint)
            if minted is None:
                minted = await self._counted(mint)
            if len(self._tokens) >= self.max_entries:
                now = self.clock.now()
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] - self.margin > now}
            self._tokens[key] = minted
            return minted
        finally:
            self._inflight.pop(key, None)

    async def _obtain_shared(
        self, shared: SharedTokens, key: Hashable, mint: Callable[[], Awaitable[Minted]]
    ) -> Minted | None:
        """The token through Redis; None when Redis failed before a mint. A failing mint is
        raised as it is (it is no Redis failure, and minting again would not help), and a
        token minted before Redis failed is kept."""
        minting = False
        minted: Minted | None = None

        async def counted() -> Minted:
            nonlocal minting, minted
            minting = True
            minted = await self._counted(mint)
            minting = False
            return minted

        try:
            return await shared.obtain(key, counted)
        except (aioredis.RedisError, OSError, ValueError) as exc:
            if minting:
                raise
            log.warning("shared token cache unavailable", error=type(exc).__name__)
            return minted
