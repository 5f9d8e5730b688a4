from __future__ import annotations

import asyncio

import httpx

from codesuggest.tokens import ManualClock, RemoteKeySet
from support.issuer import Issuer


async def test_fetch_uses_cache_control_and_keeps_keys_on_failure() -> None:
    issuer = Issuer(max_age=600).start()
    clock = ManualClock()
    outcomes: list[str] = []
    async with httpx.AsyncClient() as http:
        keys = RemoteKeySet(
            issuer.url, http, clock=clock, on_refresh=lambda i, o: outcomes.append(o)
        )
        assert not keys.ready
        assert await keys.refresh()
        assert keys.get(issuer.signing.kid) is not None
        assert keys.max_age == 600
        assert keys.seconds_until_refresh() == 480  # refreshed at 80% of max-age
        issuer.stop()
        assert not await keys.refresh()
        assert keys.get(issuer.signing.kid) is not None
        assert outcomes == ["ok", "error"]


async def test_unknown_kid_single_flight_and_rate_limit() -> None:
    issuer = Issuer().start()
    clock = ManualClock()
    try:
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(issuer.url, http, clock=clock, min_refetch_interval=30)
            await keys.refresh()
            clock.advance(31)
            before = issuer.jwks_fetches
            results = await asyncio.gather(*(keys.lookup_unknown(f"forged-{i}") for i in range(50)))
            assert results == [None] * 50
            assert issuer.jwks_fetches - before == 1
            # Inside the 30 s window even a real new key waits for the next allowed fetch...
            new = issuer.rotate()
            assert await keys.lookup_unknown(new.kid) is None
            # ...and is found as soon as the window has passed.
            clock.advance(30)
            assert await keys.lookup_unknown(new.kid) is not None
    finally:
        issuer.stop()


async def test_background_refresh_before_expiry() -> None:
    issuer = Issuer(max_age=100).start()
    clock = ManualClock()
    try:
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(issuer.url, http, clock=clock)
            keys.start()
            for _ in range(500):
                if keys.ready:
                    break
                await asyncio.sleep(0.01)
            first = keys.fetch_count
            new = issuer.rotate()
            clock.advance(81)
            keys.poke()
            for _ in range(500):
                if keys.get(new.kid):
                    break
                await asyncio.sleep(0.01)
            assert keys.get(new.kid) is not None
            assert keys.fetch_count == first + 1
            await keys.aclose()
    finally:
        issuer.stop()
