"""Everything a running instance holds: settings, clock, database, keys, limiter, HTTP client,
caches, the sync job and the usage sink. Loop-bound parts are made in `start()` (the app
lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from codesuggest.common.serving import PEER_KEEPALIVE_EXPIRY
from codesuggest.instance.instance_tokens import InstanceTokens
from codesuggest.instance.keys import KeyRing
from codesuggest.instance.ratelimit import RateLimiter, make_rate_limiter
from codesuggest.instance.revocation_pusher import RevocationPusher
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store
from codesuggest.instance.sync import SyncResult, SyncScheduler, sync_once
from codesuggest.instance.usage_sink import UsageSink
from codesuggest.instance.user_tokens import SharedTokens, UserTokenCache
from codesuggest.tokens import Clock


@dataclass
class InstanceContext:
    settings: InstanceSettings
    clock: Clock
    store: Store
    keyring: KeyRing
    instance_tokens: InstanceTokens
    user_tokens: UserTokenCache
    limiter: RateLimiter | None = None
    http: httpx.AsyncClient | None = None
    scheduler: SyncScheduler | None = None
    usage_sink: UsageSink | None = None  # when this instance takes the gateway's usage events
    pusher: RevocationPusher | None = None

    @classmethod
    def build(cls, settings: InstanceSettings, clock: Clock, store: Store) -> InstanceContext:
        keyring = KeyRing(store.sealer)
        return cls(
            settings=settings,
            clock=clock,
            store=store,
            keyring=keyring,
            instance_tokens=InstanceTokens(keyring, settings.url, settings.gateway_audience, clock),
            user_tokens=UserTokenCache(clock),
        )

    async def start(self, run_sync_job: bool) -> None:
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=200,
                max_keepalive_connections=50,
                keepalive_expiry=PEER_KEEPALIVE_EXPIRY,
            ),
            follow_redirects=False,
        )
        self.limiter = make_rate_limiter(
            self.settings.redis_url, self.settings.redis_prefix, self.settings.redis_timeout
        )
        self.user_tokens.reset_inflight()
        if self.settings.redis_url:
            self.user_tokens.shared = SharedTokens(
                self.settings.redis_url,
                self.settings.redis_prefix,
                self.store.sealer,
                self.clock,
                self.user_tokens.margin,
                timeout=self.settings.redis_timeout,
            )
        self.pusher = RevocationPusher(
            self.store,
            self.instance_tokens,
            lambda: self.http,
            self.clock,
            poll_interval=self.settings.revocation_poll_interval,
            retry_max=self.settings.revocation_retry_max,
            timeout=self.settings.gateway_timeout,
        )
        self.pusher.start()
        if run_sync_job:
            self.scheduler = SyncScheduler(
                self.sync,
                interval=self.settings.sync_interval,
                retry_initial=self.settings.sync_retry_initial,
            )
            self.scheduler.start()
        if self.settings.usage_sink_enabled:
            self.usage_sink = UsageSink.from_settings(self.settings, self.store.engine, self.clock)
            await self.usage_sink.start()

    async def sync(self, force: bool = False) -> SyncResult:
        if self.http is None:
            raise RuntimeError("the instance context is not started")
        return await sync_once(self.store, self.settings, self.http, self.clock, force=force)

    async def aclose(self) -> None:
        if self.usage_sink is not None:
            await self.usage_sink.aclose()
            self.usage_sink = None
        if self.pusher is not None:
            await self.pusher.aclose()
            self.pusher = None
        if self.scheduler is not None:
            await self.scheduler.aclose()
            self.scheduler = None
        if self.limiter is not None:
            await self.limiter.aclose()
            self.limiter = None
        if self.user_tokens.shared is not None:
            await self.user_tokens.shared.aclose()
            self.user_tokens.shared = None
        if self.http is not None:
            await self.http.aclose()
            self.http = None
