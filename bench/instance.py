"""Benchmark `POST /api/v4/code_suggestions/direct_access` with a warm user-token cache.

A real instance server (its own process, uvicorn on loopback, SQLite or --database-url) with users,
seats and PATs; the first call per user mints (SaaS self-signed, so no gateway is needed), every
measured call is a cache hit: PAT lookup, scope, seat, settings, rate limit, cached token.
The per-user limit is raised so the benchmark measures the path, not the 429s.
Prints JSON.

    .venv/bin/python bench/instance.py [--requests 2000] [--concurrency 32] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time

import httpx

from codesuggest.instance import admin, seats
from codesuggest.instance.models import utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, open_store
from instance_process import free_port, instance_env, running_instance

PATH = "/api/v4/code_suggestions/direct_access"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def provision(store: Store, users: int) -> list[str]:
    now = utc(time.time())
    pats = []
    with store.session() as s:
        admin.create_group(s, "bench")
        seats.purchase(s, users, now, "bench")
        for i in range(users):
            name = f"bench{i}"
            admin.create_user(s, name, now)
            admin.add_member(s, "bench", name)
            seats.assign(s, name, now, "bench")
            pats.append(admin.create_token(s, name, now).token)
    return pats


async def throughput(url: str, pats: list[str], total: int, concurrency: int) -> float:
    queue = iter(range(total))
    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            for i in queue:
                r = await client.post(PATH, headers={"PRIVATE-TOKEN": pats[i % len(pats)]})
                assert r.status_code == 201, r.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = instance_env(tmp, port, args.database_url) | {
            "CODESUGGEST_INSTANCE_REALM": "saas",
            "CODESUGGEST_INSTANCE_DIRECT_ACCESS_PER_MINUTE": str(10**9),
        }
        os.environ.update(env)
        store = open_store(InstanceSettings())
        pats = provision(store, args.users)
        store.dispose()
        with running_instance(env, port) as url:
            with httpx.Client(base_url=url) as client:
                cold = []
                for pat in pats:  # first call per user: mint (self-signed RS256) and cache
                    t = time.perf_counter()
                    assert client.post(PATH, headers={"PRIVATE-TOKEN": pat}).status_code == 201
                    cold.append((time.perf_counter() - t) * 1000)
                warm = []
                for i in range(args.requests):
                    t = time.perf_counter()
                    r = client.post(PATH, headers={"PRIVATE-TOKEN": pats[i % len(pats)]})
                    warm.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 201
            rps = asyncio.run(throughput(url, pats, args.requests, args.concurrency))
    print(
        json.dumps(
            {
                "benchmark": "instance.direct_access",
                "database": "postgresql" if args.database_url else "sqlite",
                "requests": args.requests,
                "users": args.users,
                "warm_latency_ms": {
                    "p50": round(percentile(warm, 0.50), 3),
                    "p99": round(percentile(warm, 0.99), 3),
                    "mean": round(statistics.fmean(warm), 3),
                },
                "first_call_latency_ms_p50": round(percentile(cold, 0.5), 3),
                "concurrency": args.concurrency,
                "requests_per_second": round(rps, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
