"""What several instance processes share through Redis (per-user limits, minted user tokens),
and the in-process limiter."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from codesuggest.common.sealing import Sealer
from codesuggest.instance import admin, seats
from codesuggest.instance.app import create_app
from codesuggest.instance.errors import InstanceError
from codesuggest.instance.models import utc
from codesuggest.instance.ratelimit import MemoryRateLimiter, RedisRateLimiter
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.user_tokens import REUSE_MARGIN, SharedTokens, UserTokenCache
from codesuggest.tokens import ManualClock
from instance.harness import free_port
from support.servers import ServerThread

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"cs-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@contextmanager
def two_instances(tmp_path: Path, prefix: str, clock: ManualClock) -> Iterator[tuple[list, str]]:
    """Two servers on one database and one Redis, as behind a load balancer; yields the
    servers' apps and a PAT of a user with a seat. Redis calls and the minting lock may take
    far longer than a loaded machine ever pauses: these tests check sharing, not outages
    (a Redis timeout makes a process mint on its own, by design; test_redis_outage_* below)."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    servers, apps = [], []
    for _ in range(2):
        port = free_port()
        app = create_app(
            InstanceSettings(
                url=f"http://127.0.0.1:{port}",
                database_url=db,
                data_dir=tmp_path,
                realm="saas",
                redis_url=REDIS,
                redis_prefix=prefix,
                redis_timeout=60.0,
            ),
            clock=clock,
        )
        apps.append(app)
        servers.append(ServerThread(app, port=port).start())
        app.state.ctx.user_tokens.shared.lock_seconds = 60.0
    store = apps[0].state.ctx.store
    now = utc(clock.now())
    with store.session() as s:
        admin.create_user(s, "shared", now)
        admin.create_group(s, "g")
        admin.add_member(s, "g", "shared")
        seats.purchase(s, 1, now, "g")
        seats.assign(s, "shared", now, "g")
        pat = admin.create_token(s, "shared", now).token
    try:
        yield list(zip(servers, apps, strict=True)), pat
    finally:
        for server in servers:
            server.stop()
        for app in apps:
            app.state.ctx.store.dispose()


def direct_access(url: str, pat: str) -> httpx.Response:
    return httpx.post(
        url + "/api/v4/code_suggestions/direct_access", headers={"PRIVATE-TOKEN": pat}
    )


def test_two_instance_processes_share_the_limit_and_the_token(tmp_path: Path, prefix: str) -> None:
    """25 + 25 requests, then 429; one user token minted for both processes."""
    clock = ManualClock(float(int(time.time()) // 60 * 60 + 5))
    with two_instances(tmp_path, prefix, clock) as (parts, pat):
        replies = [direct_access(parts[i % 2][0].url, pat) for i in range(50)]
        assert [r.status_code for r in replies] == [201] * 50
        last = direct_access(parts[0][0].url, pat)
        assert last.status_code == 429
        assert 1 <= int(last.headers["Retry-After"]) <= 60
        # Minted once, then shared through Redis, sealed.
        assert len({r.json()["token"] for r in replies}) == 1
        assert sum(app.state.ctx.user_tokens.mints for _, app in parts) == 1
        client = redis.Redis.from_url(REDIS)
        stored = [client.get(k) for k in client.scan_iter(f"{prefix}ujwt:*")]
        client.close()
        assert len(stored) == 1 and replies[0].json()["token"].encode() not in stored[0]


def test_concurrent_first_calls_on_two_processes_mint_once(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 first calls at once over two processes: one mints, the other waits for its token in
    Redis. The mint is held until both processes are waiting for the token (at most 10 s), so
    the two first calls overlap however the machine schedules them."""
    clock = ManualClock(float(int(time.time()) // 60 * 60 + 5))
    with two_instances(tmp_path, prefix, clock) as (parts, pat):
        caches = [app.state.ctx.user_tokens for _, app in parts]
        for _, app in parts:
            tokens = app.state.ctx.instance_tokens

            def held(session, caller, sign=tokens.sign_user_token):  # type: ignore[no-untyped-def]
                # Not wait_until: its TimeoutError would fail the mint. Past the deadline the
                # mint goes ahead: the other process then finds the token in Redis, one mint.
                deadline = time.monotonic() + 10
                while not all(cache._inflight for cache in caches):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                return sign(session, caller)

            monkeypatch.setattr(tokens, "sign_user_token", held)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=90) as client:
                calls = [
                    client.post(
                        parts[i % 2][0].url + "/api/v4/code_suggestions/direct_access",
                        headers={"PRIVATE-TOKEN": pat},
                    )
                    for i in range(40)
                ]
                return await asyncio.gather(*calls)

        replies = asyncio.run(burst())
        assert [r.status_code for r in replies] == [201] * 40
        assert len({r.json()["token"] for r in replies}) == 1
        assert [cache.mints for cache in caches] in ([1, 0], [0, 1])


def test_memory_limiter_counts_per_user_over_a_moving_window() -> None:
    limiter = MemoryRateLimiter()

    async def hits(subject: str, n: int) -> list[bool]:
        return [(await limiter.hit("x", subject, 3)).allowed for _ in range(n)]

    assert asyncio.run(hits("a", 4)) == [True, True, True, False]
    assert asyncio.run(hits("b", 1)) == [True]
    assert 1 <= asyncio.run(limiter.hit("x", "a", 3)).retry_after <= 60


def test_no_burst_slips_through_at_a_minute_boundary() -> None:
    """A fixed window reset at the boundary let the limit through twice within moments (here
    with a one-second window, so the test waits for a boundary at most a second)."""
    limiter = MemoryRateLimiter(window=1)
    while time.time() % 1 < 0.7:  # poll until just before a boundary
        time.sleep(0.01)

    async def hits(n: int) -> list[bool]:
        return [(await limiter.hit("x", "edge", 5)).allowed for _ in range(n)]

    assert asyncio.run(hits(5)) == [True] * 5
    while time.time() % 1 >= 0.7:  # now just after it
        time.sleep(0.01)
    assert asyncio.run(hits(5)) == [False] * 5
    deadline = time.monotonic() + 3
    while not asyncio.run(limiter.hit("x", "edge", 5)).allowed:  # until the first ones age out
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_redis_outage_is_a_503_with_retry_after(prefix: str) -> None:
    """Counting per process would let every process through up to the limit."""

    async def scenario() -> InstanceError:
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix)
        try:
            with pytest.raises(InstanceError) as info:
                await limiter.hit("x", "a", 2)
            return info.value
        finally:
            await limiter.aclose()

    refused = asyncio.run(scenario())
    assert refused.status == 503 and refused.body["error"] == "redis_unavailable"
    assert int(refused.headers["Retry-After"]) > 0


def test_redis_outage_still_mints_the_token(prefix: str) -> None:
    clock = ManualClock(1_000.0)
    cache = UserTokenCache(clock)

    async def run() -> tuple[str, int]:
        cache.shared = _shared(prefix, clock, f"redis://127.0.0.1:{free_port()}/0")

        async def mint() -> tuple[str, int]:
            return "token-1", 4_600

        try:
            return await cache.get(("user", "saas"), mint)
        finally:
            await cache.shared.aclose()

    assert asyncio.run(run()) == ("token-1", 4_600)
    assert cache.mints == 1


def _shared(prefix: str, clock: ManualClock, url: str = REDIS) -> SharedTokens:
    return SharedTokens(url, prefix, Sealer("s" * 32), clock, REUSE_MARGIN)


def test_a_token_stored_between_look_and_lock_is_taken_not_minted_again(prefix: str) -> None:
    """Process b finds no token, then (before it takes the lock) process a mints, stores it and
    unlocks: b must find a's token once it holds the lock, not mint a second one."""
    clock = ManualClock(1_000.0)
    minted_by: list[str] = []

    async def run() -> tuple[str, int]:
        a, b = _shared(prefix, clock), _shared(prefix, clock)
        look = b.get

        async def look_while_a_mints(key: Hashable) -> tuple[str, int] | None:
            hit = await look(key)
            if not minted_by:
                await a.obtain(key, lambda: mint("a"))
            return hit

        async def mint(who: str) -> tuple[str, int]:
            minted_by.append(who)
            return f"token-{who}", 4_600

        b.get = look_while_a_mints  # type: ignore[method-assign]
        try:
            return await b.obtain(("user", "saas"), lambda: mint("b"))
        finally:
            await a.aclose()
            await b.aclose()

    assert asyncio.run(run()) == ("token-a", 4_600)
    assert minted_by == ["a"]


def test_a_failing_mint_is_not_taken_for_a_redis_failure(prefix: str) -> None:
    """A mint that times out (an OSError, like a Redis failure) is raised as it is, once: the
    cache does not mint again as it would when Redis fails."""
    clock = ManualClock(1_000.0)
    cache = UserTokenCache(clock)

    async def run() -> None:
        cache.shared = _shared(prefix, clock)

        async def mint() -> tuple[str, int]:
            raise TimeoutError("gateway")

        try:
            await cache.get(("user", "saas"), mint)
        finally:
            await cache.shared.aclose()

    with pytest.raises(TimeoutError, match="gateway"):
        asyncio.run(run())
    assert cache.mints == 1


def test_a_token_minted_before_redis_failed_is_kept(prefix: str) -> None:
    """Redis fails while storing the minted token: the caller gets that token, no second mint."""
    clock = ManualClock(1_000.0)
    cache = UserTokenCache(clock)

    async def run() -> tuple[str, int]:
        shared = cache.shared = _shared(prefix, clock)

        async def store_fails(key: Hashable, minted: tuple[str, int]) -> None:
            raise redis.exceptions.ConnectionError("Redis went away")

        async def mint() -> tuple[str, int]:
            return f"token-{cache.mints}", 4_600

        shared.put = store_fails  # type: ignore[method-assign]
        try:
            return await cache.get(("user", "saas"), mint)
        finally:
            await shared.aclose()

    assert asyncio.run(run()) == ("token-1", 4_600)
    assert cache.mints == 1
