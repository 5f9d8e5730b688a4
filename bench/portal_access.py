"""Portal benchmark: cloudConnectorAccess latency and throughput over real loopback HTTP.

Runs a portal (SQLite by default, or --database-url) in a uvicorn thread and calls it the way
instances do: one license with the add-on, a distinct instance id per call. Prints one JSON
object. Run: .venv/bin/python bench/portal_access.py [--n 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

from codesuggest.common.serving import bind, server_config
from codesuggest.portal.app import create_app
from codesuggest.portal.settings import PortalSettings

QUERY = (
    "query cloudConnectorAccess($licenseKey: String!, $gitlabVersion: String!) "
    "{ cloudConnectorAccess(licenseKey: $licenseKey, gitlabVersion: $gitlabVersion) "
    "{ serviceToken { token expiresAt } availableServices { name serviceStartTime bundledWith } "
    "catalog } }"
)


def serve(settings: PortalSettings, sock) -> tuple[uvicorn.Server, threading.Thread]:  # type: ignore[no-untyped-def]
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), "127.0.0.1", port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("portal did not start")
        time.sleep(0.01)
    return server, thread


async def run(url: str, key: str, n: int, concurrency: int) -> dict[str, object]:
    samples: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            response = await http.post(
                f"{url}/graphql",
                json={"query": QUERY, "variables": {"licenseKey": key, "gitlabVersion": "17.0"}},
                headers={"x-gitlab-instance-id": str(uuid.uuid4()), "x-gitlab-version": "17.0"},
            )
            samples.append(time.perf_counter() - started)
            body = response.json()
            if response.status_code != 200 or not body["data"]["cloudConnectorAccess"]:
                raise RuntimeError(f"unexpected answer: {response.status_code} {body}")

    async with httpx.AsyncClient(timeout=30) as http:
        await worker_warmup(http, url, key)
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(samples)
    return {
        "requests": n,
        "concurrency": concurrency,
        "throughput_per_s": round(n / elapsed, 1),
        "latency_ms": {
            "p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
        },
    }


async def worker_warmup(http: httpx.AsyncClient, url: str, key: str) -> None:
    for _ in range(5):
        await http.post(
            f"{url}/graphql",
            json={"query": QUERY, "variables": {"licenseKey": key, "gitlabVersion": "17.0"}},
            headers={"x-gitlab-instance-id": "warmup"},
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sock = bind("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = PortalSettings(url=url, data_dir=Path(tmp), database_url=args.database_url)
        server, thread = serve(settings, sock)
        admin = server.config.app.state.ctx.admin
        license = admin.create_license(customer="bench")
        admin.add_addon(license.id)
        try:
            result = asyncio.run(run(url, license.key, args.n, args.concurrency))
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    result["database"] = "postgresql" if args.database_url else "sqlite"
    print(json.dumps({"bench": "portal_access", **result}))


if __name__ == "__main__":
    main()
