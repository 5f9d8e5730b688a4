"""A trusted issuer's published keys, fetched by OIDC discovery and kept fresh in the background.

Request handlers only ever read the cache. A background task refreshes it before the
`Cache-Control` max-age runs out; a failed refresh keeps the last good keys. An unknown `kid`
triggers one immediate refetch, but at most once per `min_refetch_interval` per issuer and with a
single fetch in flight, so forged kids cannot hammer the issuer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable

import httpx

from codesuggest.tokens.clock import Clock, SystemClock
from codesuggest.tokens.keys import PublicKey, parse_jwks

log = logging.getLogger("codesuggest.tokens.remote")

DEFAULT_MAX_AGE = 86400.0
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")

RefreshHook = Callable[[str, str], None]
"""Called as hook(issuer, outcome) with outcome 'ok' or 'error' after every fetch."""


class RemoteKeySet:
    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        clock: Clock | None = None,
        default_max_age: float = DEFAULT_MAX_AGE,
        min_refetch_interval: float = 30.0,
        refresh_at: float = 0.8,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        timeout: float = 5.0,
        on_refresh: RefreshHook | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        # Where discovery lives; differs from `issuer` only for non-URL issuers such as the
        # gateway's service name.
        self.base_url = (base_url or issuer).rstrip("/")
        self.http = http
        self.clock = clock or SystemClock()
        self.default_max_age = default_max_age
        self.min_refetch_interval = min_refetch_interval
        self.refresh_at = refresh_at
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.timeout = timeout
        self.on_refresh = on_refresh
        self.keys: dict[str, PublicKey] = {}
        self.fetched_at: float | None = None
        self.max_age = default_max_age
        self.last_attempt: float | None = None
        self.last_failed = False
        self.fetch_count = 0
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def ready(self) -> bool:
        return bool(self.keys)

    @property
    def reachable(self) -> bool:
        return not self.last_failed

    def get(self, kid: str) -> PublicKey | None:
        return self.keys.get(kid)

    async def lookup_unknown(self, kid: str) -> PublicKey | None:
        now = self.clock.now()
        inflight = self._inflight is not None and not self._inflight.done()
        if not inflight and self.last_attempt is not None:
            if now - self.last_attempt < self.min_refetch_interval:
                return None
        await self.refresh()
        return self.keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch now, joining a fetch already in flight. True when keys were loaded."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
        return await asyncio.shield(self._inflight)

    async def _fetch(self) -> bool:
        self.last_attempt = self.clock.now()
        self.fetch_count += 1
        try:
            discovery = await self.http.get(
                f"{self.base_url}/.well-known/openid-configuration", timeout=self.timeout
            )
            discovery.raise_for_status()
            jwks_uri = discovery.json()["jwks_uri"]
            response = await self.http.get(jwks_uri, timeout=self.timeout)
            response.raise_for_status()
            keys = parse_jwks(response.json())
            if not keys:
                raise ValueError("JWKS holds no usable RS256 signing key")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "key refresh failed",
                extra={"issuer": self.issuer, "error": f"{type(exc).__name__}: {exc}"},
            )
            self.last_failed = True
            if self.on_refresh:
                self.on_refresh(self.issuer, "error")
            return False
        self.last_failed = False
        self.keys = keys
        self.fetched_at = self.clock.now()
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        self.max_age = float(match.group(1)) if match else self.default_max_age
        if self.on_refresh:
            self.on_refresh(self.issuer, "ok")
        return True

    def seconds_until_refresh(self) -> float:
        if self.fetched_at is None:
            return 0.0
        due = self.fetched_at + self.max_age * self.refresh_at
        return max(0.0, due - self.clock.now())

    def start(self) -> None:
        """Start the background refresher (loads keys at once, retries with back-off)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"jwks:{self.issuer}")

    def poke(self) -> None:
        """Wake the refresher now (e.g. after tests move the clock)."""
        self._wake.set()

    async def _run(self) -> None:
        delay = self.retry_initial
        while True:
            wait = self.seconds_until_refresh()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(wait, 3600))
                if self.seconds_until_refresh() > 0:
                    continue
            if await self.refresh():
                delay = self.retry_initial
                continue
            # Failed: keep the last good keys, retry with exponential back-off.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            delay = min(delay * 2, self.retry_max)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
