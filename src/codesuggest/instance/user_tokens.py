"""Reuse of minted user tokens: one token per user until 5 minutes before it expires, and at
most one mint per user in flight (concurrent callers wait for the same mint)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

from codesuggest.tokens import Clock

REUSE_MARGIN = 300
Minted = tuple[str, int]
"""(token, expires_at epoch seconds)"""


class UserTokenCache:
    def __init__(self, clock: Clock, margin: float = REUSE_MARGIN, max_entries: int = 100_000):
        self.clock = clock
        self.margin = margin
        self.max_entries = max_entries
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
            future = asyncio.ensure_future(self._mint(key, mint))
            self._inflight[key] = future
        # shield: a caller that goes away must not cancel the mint the others wait for
        return await asyncio.shield(future)

    async def _mint(self, key: Hashable, mint: Callable[[], Awaitable[Minted]]) -> Minted:
        try:
            self.mints += 1
            minted = await mint()
            if len(self._tokens) >= self.max_entries:
                now = self.clock.now()
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] - self.margin > now}
            self._tokens[key] = minted
            return minted
        finally:
            self._inflight.pop(key, None)
