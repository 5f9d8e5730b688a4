"""Per-user fairness: one user flooding the gateway does not slow another user down, and the
flooder gets 429 with Retry-After; the buckets, the concurrency cap and the Redis sharing."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import Request, Response

from codesuggest.gateway.auth import Caller
from codesuggest.gateway.errors import GatewayError
from codesuggest.gateway.fairness import Fairness, FairnessSettings, TokenBuckets
from gateway.completions.routes_env import completion_body
from gateway.providers.fake_servers import FakeOpenAI
from support.issuer import Issuer, instance_headers, wait_until
from support.servers import free_port

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
MODEL_SLOTS = 2
MODEL_SECONDS = 0.05
REDIS = "redis://127.0.0.1:6379/0"


class CapacityLimitedModel(FakeOpenAI):
    """An OpenAI-compatible model server that, like a real one, serves a few requests at a
    time (MODEL_SLOTS, MODEL_SECONDS each): whatever one user sends queues in front of others."""

    async def _answer(self, request: Request, chat: bool) -> Response:
        if not hasattr(self, "slots"):
            self.slots = asyncio.Semaphore(MODEL_SLOTS)
        async with self.slots:
            await asyncio.sleep(MODEL_SECONDS)
            return await super()._answer(request, chat)


def capacity_limited_model() -> CapacityLimitedModel:
    return CapacityLimitedModel().start()


@dataclass
class Stack:
    url: str
    saas: Issuer

    def headers(self, user: str) -> dict[str, str]:
        token = self.saas.user_token(user, INSTANCE_ID)
        return instance_headers(token, INSTANCE_ID, realm="saas") | {
            "X-Gitlab-Global-User-Id": user
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The gateway in its own process, as deployed (its CPU is not the test's)."""
    model = capacity_limited_model()
    saas = Issuer("saas").start()
    port = free_port()
    env = {
        "CODESUGGEST_GATEWAY_TRUSTED_ISSUERS": json.dumps(
            [{"url": saas.url, "kind": "saas-instance"}]
        ),
        "CODESUGGEST_GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("gateway")),
        "CODESUGGEST_GATEWAY_LOG_LEVEL": "WARNING",
        "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "openai",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_BASE_URL": model.url + "/v1",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_MODEL": "fake-starcoder2",
        "CODESUGGEST_GATEWAY_COMPLETIONS__EMBEDDED_ENABLED": "false",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codesuggest.stack.serve_part",
            "gateway",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",  # buckets are per process without Redis (docs/gateway.md)
        ],
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, "the gateway exited"
        try:
            return httpx.get(url + "/monitoring/ready").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, what="gateway ready")
        yield Stack(url, saas)
    finally:
        process.terminate()
        process.wait(timeout=30)
        saas.stop()
        model.stop()


def _latencies(stack: Stack, user: str, count: int) -> list[float]:
    headers = stack.headers(user)
    out = []
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for _ in range(count):
            started = time.perf_counter()
            response = c.post("/v2/code/completions", json=completion_body(), headers=headers)
            out.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return out


def _completions_served(stack: Stack) -> float:
    text = httpx.get(stack.url + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("codesuggest_gateway_requests_total") and "completions" in line
    )


def test_a_flooding_user_does_not_slow_another_user_down(stack: Stack, tmp_path: Path) -> None:
    baseline = statistics.median(_latencies(stack, "victim", 40))
    stop = tmp_path / "stop"
    before = _completions_served(stack)
    flooder = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("flood_client.py")),
            stack.url + "/v2/code/completions",
            json.dumps(stack.headers("flooder")),
            json.dumps(completion_body()),
            "8",
            "20000",
            str(stop),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flooder.stdout is not None
        assert flooder.stdout.readline().strip() == "started"
        wait_until(lambda: _completions_served(stack) > before + 100, timeout=30, what="a flood")
        during = statistics.median(_latencies(stack, "victim", 40))
    finally:
        stop.touch()
        out, _ = flooder.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1])
    statuses = {int(k): v for k, v in result["statuses"].items()}
    assert during <= 2 * baseline, (
        f"p50 {during * 1000:.1f} ms vs {baseline * 1000:.1f} ms alone; flood {statuses}"
    )
    assert set(statuses) <= {200, 429}
    assert statuses[429] > statuses[200] > 0
    assert all(value.isdigit() and int(value) >= 1 for value in result["retry_after"])


def _caller(sub: str, user: bool = True, instance: str = INSTANCE_ID) -> Caller:
    return Caller(
        claims={"iss": "https://issuer", "sub": sub},
        is_user_token=user,
        realm="saas",
        instance_id=instance,
        global_user_id=sub,
        host_name=None,
        scopes=frozenset({"complete_code"}),
        client_name=None,
        client_version=None,
    )


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    buckets = TokenBuckets(rate=10.0, burst=3)
    assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 100.0) == pytest.approx(0.1)
    assert buckets.take("b", 100.0) == 0.0  # another key has its own bucket
    assert buckets.take("a", 100.1) == 0.0
    assert buckets.take("a", 100.1) > 0


def test_over_the_rate_is_429_with_retry_after() -> None:
    now = [0.0]
    fairness = Fairness(FairnessSettings(user_rate=1.0, user_burst=2), now=lambda: now[0])
    for _ in range(2):
        fairness.admit(_caller("u")).release()
    with pytest.raises(GatewayError) as refused:
        fairness.admit(_caller("u"))
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "1"}
    fairness.admit(_caller("other")).release()
    now[0] = 1.0
    fairness.admit(_caller("u")).release()


def test_the_instance_has_its_own_bucket_over_both_paths() -> None:
    fairness = Fairness(FairnessSettings(instance_rate=1.0, instance_burst=3), now=lambda: 0.0)
    fairness.admit(_caller("a")).release()
    fairness.admit(_caller("b")).release()
    fairness.admit(_caller(INSTANCE_ID, user=False)).release()
    with pytest.raises(GatewayError):
        fairness.admit(_caller("c"))
    fairness.admit(_caller("d", instance="another-instance")).release()


def test_concurrency_is_capped_per_user_and_released() -> None:
    fairness = Fairness(FairnessSettings(user_concurrency=2), now=lambda: 0.0)
    first, second = fairness.admit(_caller("u")), fairness.admit(_caller("u"))
    with pytest.raises(GatewayError) as refused:
        fairness.admit(_caller("u"))
    assert refused.value.status == 429
    fairness.admit(_caller("v")).release()
    first.release()
    first.release()  # twice is harmless
    fairness.admit(_caller("u")).release()
    second.release()
    assert fairness.in_flight == {}


def test_replicas_share_the_buckets_through_redis() -> None:
    prefix = f"cs-test-{uuid.uuid4().hex[:8]}:"
    settings = FairnessSettings(
        user_rate=0.001, user_burst=10, redis_url=REDIS, redis_prefix=prefix
    )

    async def scenario() -> tuple[int, int]:
        a, b = Fairness(settings), Fairness(settings)
        try:
            for _ in range(8):
                a.admit(_caller("u")).release()
            b.admit(_caller("u")).release()
            assert a.shared is not None and b.shared is not None
            await a.shared.sync()
            await b.shared.sync()  # b learns the 8 admitted on a
            admitted_on_b = 0
            for _ in range(10):
                try:
                    b.admit(_caller("u")).release()
                    admitted_on_b += 1
                except GatewayError:
                    pass
            return admitted_on_b, len(a.users.state)
        finally:
            await a.aclose()
            await b.aclose()

    try:
        admitted_on_b, _ = asyncio.run(scenario())
    finally:
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
    assert admitted_on_b == 1  # 10 in all: 8 on a, then 1 + 1 on b


def test_a_redis_outage_keeps_the_buckets_local() -> None:
    settings = FairnessSettings(user_burst=2, redis_url="redis://127.0.0.1:1/0")

    async def scenario() -> None:
        fairness = Fairness(settings, now=lambda: 0.0)
        try:
            fairness.admit(_caller("u")).release()
            assert fairness.shared is not None
            await fairness.shared.sync()
            fairness.admit(_caller("u")).release()
            with pytest.raises(GatewayError):
                fairness.admit(_caller("u"))
        finally:
            await fairness.aclose()

    asyncio.run(scenario())
