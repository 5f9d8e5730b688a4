"""Replica faults behind the real nginx edge: a replica that lacks an issuer's keys, a mass start
of one instance's users, a replica SIGKILLed under load, and one SIGTERMed under load."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from codesuggest.client.details import ConnectionDetails
from codesuggest.client.transports import new_http_client, post_direct
from edge.conftest import GatewayProcess, Nginx, nginx_options, replicas, wait_until
from edge.test_nginx import INSTANCE_ID, completion, mint_headers, user_headers
from support.issuer import Issuer

MINT = "/auth/v1/code/user_access_token"
REPLICA_ENV = {
    # Retry key fetches every second at most: a replica is ready soon after its issuer.
    "CODESUGGEST_GATEWAY_JWKS_RETRY_MAX": "1",
    # On SIGTERM: not ready, still serving, for 1 s; then finish in-flight work and stop.
    "CODESUGGEST_GATEWAY_SHUTDOWN_DELAY": "1",
}


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, issuer: Issuer) -> Iterator[list[GatewayProcess]]:  # type: ignore[no-untyped-def]
    with replicas(tmp_path_factory.mktemp("fault-gateways"), issuer.url, REPLICA_ENV) as started:
        yield started


def mint_for(issuer: Issuer, user: str) -> dict[str, str]:
    return mint_headers(issuer) | {"X-Gitlab-Global-User-Id": user}


def test_a_replica_without_the_issuers_keys_causes_no_401(
    edge: Nginx, gateways: list[GatewayProcess], issuer: Issuer
) -> None:
    not_ready = gateways[0]
    issuer.stop()  # the portal is unreachable while one replica restarts
    try:
        not_ready.stop()
        not_ready.start(ready=False)
        readiness = httpx.get(not_ready.url + "/monitoring/ready")
        assert readiness.status_code == 503 and readiness.json()["missing_issuers"]
        # Asked directly, it says "not now" rather than "no".
        direct = httpx.post(
            not_ready.url + "/v1/code/user_access_token", headers=mint_headers(issuer)
        )
        assert direct.status_code == 503, direct.text
        assert int(direct.headers["retry-after"]) > 0
        with httpx.Client(base_url=edge.url, timeout=30) as client:
            minted = [client.post(MINT, headers=mint_for(issuer, f"u{i}")) for i in range(20)]
            assert [r.status_code for r in minted] == [200] * 20, [r.text for r in minted]
            # Its own user tokens it can check: completions are served by either replica.
            token = minted[0].json()["token"]
            headers = user_headers(token) | {"X-Gitlab-Global-User-Id": "u0"}
            answers = [
                client.post("/ai/v2/completions", headers=headers, json=completion())
                for _ in range(6)
            ]
            assert [r.status_code for r in answers] == [200] * 6
        metrics = httpx.get(not_ready.url + "/metrics").text
        assert 'codesuggest_gateway_auth_failures_total{reason="keys_unavailable"}' in metrics
    finally:
        issuer.start()
    wait_until(not_ready.answers, 60, "the replica ready once its issuer is back")
    assert (
        httpx.post(
            not_ready.url + "/v1/code/user_access_token", headers=mint_headers(issuer)
        ).status_code
        == 200
    )


def test_one_instances_mass_start_gets_no_429_from_the_default_edge(
    edge: Nginx, issuer: Issuer
) -> None:
    """500 first `direct_access` calls: 500 mints from one instance, at once."""

    async def burst() -> Counter[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=edge.url, timeout=60, limits=limits) as client:
            gate = asyncio.Semaphore(64)

            async def one(i: int) -> int:
                async with gate:
                    reply = await client.post(MINT, headers=mint_for(issuer, f"mass-{i}"))
                    return reply.status_code

            return Counter(await asyncio.gather(*(one(i) for i in range(500))))

    assert asyncio.run(burst()) == Counter({200: 500})


def test_limits_are_per_user_and_per_instance(
    nginx_bin: str, gateways: list[GatewayProcess], issuer: Issuer
) -> None:
    options, runtime = nginx_options(
        [g.url for g in gateways], rate="1r/m", burst=2, mint_rate="1r/m", mint_burst=1
    )
    nginx = Nginx(nginx_bin, options, runtime).start()
    try:
        with httpx.Client(base_url=nginx.url, timeout=30) as client:

            def complete(user: str) -> int:
                headers = {"X-Gitlab-Global-User-Id": user}
                return client.post("/ai/v2/completions", headers=headers, json={}).status_code

            noisy = [complete("noisy") for _ in range(5)]
            assert noisy[:3] == [401] * 3 and noisy[3:] == [429, 429]  # the gateway's 401
            assert complete("quiet") == 401  # another user's budget is untouched

            def mint(instance: str) -> int:
                headers = mint_headers(issuer) | {"X-Gitlab-Instance-Id": instance}
                return client.post(MINT, headers=headers).status_code

            assert [mint(INSTANCE_ID) for _ in range(3)][2] == 429
            other = "99999999-2222-3333-4444-555555555555"
            assert mint(other) != 429  # (401: the header disagrees with the signed claim)
    finally:
        nginx.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def connection_details(edge: Nginx, issuer: Issuer, users: list[str]) -> list[ConnectionDetails]:
    """What `direct_access` gives each user's IDE (minted through the edge)."""
    details = []
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        for user in users:
            minted = client.post(MINT, headers=mint_for(issuer, user)).json()
            headers = user_headers(minted["token"]) | {"X-Gitlab-Global-User-Id": user}
            del headers["Authorization"], headers["X-Gitlab-Authentication-Type"]
            expires = minted["expires_at"]
            details.append(
                ConnectionDetails(
                    edge.url + "/ai", minted["token"], expires, headers, None, 0.0, expires
                )
            )
    return details


def test_a_replica_sigkilled_under_load_fails_no_completion(
    edge: Nginx, gateways: list[GatewayProcess], issuer: Issuer
) -> None:
    """A bounded burst through the client library's transport, as an IDE sends it."""
    users = [f"load-{i}" for i in range(8)]  # each within its edge rate limit
    details = connection_details(edge, issuer, users)
    victim = gateways[1]

    async def load() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        async with new_http_client(30) as http:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                async with gate:
                    if i == 60:
                        assert victim.process is not None
                        victim.process.send_signal(signal.SIGKILL)
                    try:
                        await post_direct(http, details[i % len(users)], completion(), "1.0")
                    except Exception as exc:  # noqa: BLE001 - counted, and shown if any
                        outcomes[f"{type(exc).__name__}: {exc}"] += 1
                    else:
                        outcomes["served"] += 1

            await asyncio.gather(*(one(i) for i in range(240)))
        return outcomes

    try:
        outcomes = asyncio.run(load())
        log = [line for line in edge.error_log().splitlines() if "limiting" not in line]
        assert outcomes == Counter({"served": 240}), "\n".join(log[-30:])
    finally:
        assert victim.process is not None
        victim.process.wait(15)
        victim.start()


def usage_events(gateway: GatewayProcess, prefix: str) -> tuple[set[str], set[str]]:
    """(event ids shipped to the replica's usage.jsonl, ids still pending in its outbox) of the
    completion events of users whose id starts with `prefix`."""

    def ours(payload: dict[str, object]) -> bool:
        user = str(payload.get("global_user_id") or "")
        return payload.get("name") == "code_suggestion_requested" and user.startswith(prefix)

    shipped: set[str] = set()
    jsonl = gateway.data_dir / "usage.jsonl"
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            payload = json.loads(line)
            if ours(payload):
                shipped.add(str(payload["event_id"]))
    pending: set[str] = set()
    with sqlite3.connect(gateway.data_dir / "usage-outbox.db") as db:
        for (text,) in db.execute("SELECT payload FROM outbox WHERE delivered_at IS NULL"):
            payload = json.loads(text)
            if ours(payload):
                pending.add(str(payload["event_id"]))
    return shipped, pending


def test_a_sigtermed_replica_finishes_its_work_and_loses_no_usage_event(
    edge: Nginx, gateways: list[GatewayProcess], issuer: Issuer
) -> None:
    users = [f"term-{i}" for i in range(8)]
    details = connection_details(edge, issuer, users)
    victim = gateways[0]
    readiness: list[tuple[int, str]] = []

    async def watch_readiness() -> None:
        assert victim.process is not None
        async with httpx.AsyncClient(timeout=2) as http:
            while victim.process.poll() is None:
                try:
                    reply = await http.get(victim.url + "/monitoring/ready")
                    readiness.append((reply.status_code, reply.json().get("detail", "")))
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)

    async def load() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        watcher: asyncio.Task[None] | None = None
        async with new_http_client(30) as http:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                nonlocal watcher
                async with gate:
                    if i == 40:
                        assert victim.process is not None
                        victim.process.send_signal(signal.SIGTERM)
                        watcher = asyncio.create_task(watch_readiness())
                    try:
                        await post_direct(http, details[i % len(users)], completion(), "1.0")
                    except Exception as exc:  # noqa: BLE001 - counted, and shown if any
                        outcomes[f"{type(exc).__name__}: {exc}"] += 1
                    else:
                        outcomes["served"] += 1

            await asyncio.gather(*(one(i) for i in range(200)))
        assert watcher is not None
        await watcher
        return outcomes

    try:
        outcomes = asyncio.run(load())
        assert outcomes == Counter({"served": 200})
        assert victim.process is not None and victim.process.wait(30) is not None
        assert (503, "shutting down") in readiness  # not ready first, while still serving
        counted = set()
        for gateway in gateways:
            shipped, pending = usage_events(gateway, "term-")
            counted |= shipped | pending
        # Exactly one event per answered completion, across both replicas.
        assert len(counted) == 200
        shipped, pending = usage_events(victim, "term-")
        assert shipped and not pending  # the stopping replica shipped its outbox
    finally:
        victim.start()
