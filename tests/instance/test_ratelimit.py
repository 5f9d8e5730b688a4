"""Per-user limits shared through Redis by several instance processes, and in process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from codesuggest.instance import admin, seats
from codesuggest.instance.app import create_app
from codesuggest.instance.models import utc
from codesuggest.instance.ratelimit import MemoryRateLimiter, RedisRateLimiter
from codesuggest.instance.settings import InstanceSettings
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


def test_two_instance_processes_share_the_limit(tmp_path: Path, prefix: str) -> None:
    """Two servers on one database behind a 'load balancer': 25 + 25 requests, then 429."""
    clock = ManualClock(float(int(time.time()) // 60 * 60 + 5))
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
            ),
            clock=clock,
        )
        apps.append(app)
        servers.append(ServerThread(app, port=port).start())
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
        statuses = []
        for i in range(50):
            server = servers[i % 2]
            statuses.append(
                httpx.post(
                    server.url + "/api/v4/code_suggestions/direct_access",
                    headers={"PRIVATE-TOKEN": pat},
                ).status_code
            )
        assert statuses == [201] * 50
        last = httpx.post(
            servers[0].url + "/api/v4/code_suggestions/direct_access",
            headers={"PRIVATE-TOKEN": pat},
        )
        assert last.status_code == 429
        assert last.headers["Retry-After"] == "55"
    finally:
        for server in servers:
            server.stop()
        for app in apps:
            app.state.ctx.store.dispose()


def test_memory_limiter_counts_per_user_and_window() -> None:
    clock = ManualClock(600.0)
    limiter = MemoryRateLimiter(clock)

    async def hits(subject: str, n: int) -> list[bool]:
        return [(await limiter.hit("x", subject, 3)).allowed for _ in range(n)]

    assert asyncio.run(hits("a", 4)) == [True, True, True, False]
    assert asyncio.run(hits("b", 1)) == [True]
    clock.advance(59.5)
    assert asyncio.run(limiter.hit("x", "a", 3)).retry_after == 1
    clock.advance(0.5)
    assert asyncio.run(hits("a", 1)) == [True]


def test_redis_outage_falls_back_to_counting_in_process(prefix: str) -> None:
    clock = ManualClock(1200.0)

    async def scenario() -> list[bool]:
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix, clock)
        try:
            return [(await limiter.hit("x", "a", 2)).allowed for _ in range(3)]
        finally:
            await limiter.aclose()

    assert asyncio.run(scenario()) == [True, True, False]
