"""No usage is lost when the gateway is SIGKILLed mid-stream and the collector goes away.

A real `codesuggest gateway serve` process, configured by environment to ship usage to a
loopback HTTP collector, serves a steady stream of completions (direct path with user tokens,
monolith path with a portal-signed instance token) and is killed with SIGKILL several times,
restarted on the same port each time, while the collector is stopped and restarted in between.
At the end the collector holds exactly one `code_suggestion_requested` per completion a client
saw answered (after dedupe by `event_id`), with the right path, and the client's telemetry
counts land on the right user.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from codesuggest.gateway.usage.report import GroupBy, summarize
from codesuggest.tokens import (
    COMPLETE_CODE,
    GENERATE_CODE,
    PrivateKey,
    Signer,
    jwks_document,
    openid_configuration,
)
from support.servers import ServerThread, free_port

pytestmark = [pytest.mark.slow]

SERVICE = "gitlab-ai-gateway"
INSTANCE_ID = "5f0c6e1e-usage-loss-instance"
COLLECTOR_TOKEN = "collector-secret"
KILLS = 4
PER_ROUND = 60  # completions started per gateway life
WORKERS = 6


class Collector:
    """An idempotent usage collector (the `http` sink's peer), by `event_id`."""

    def __init__(self) -> None:
        self.events: dict[str, dict] = {}
        self.received = 0
        self.lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/usage")(self._post)

    async def _post(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {COLLECTOR_TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.json()
        with self.lock:
            for event in body["events"]:
                self.received += 1
                self.events.setdefault(event["event_id"], event)
        return JSONResponse({"ok": True})

    def requested(self) -> list[dict]:
        with self.lock:
            return [e for e in self.events.values() if e["name"] == "code_suggestion_requested"]


def portal_app(key: PrivateKey, url_holder: dict) -> FastAPI:
    """Publishes the portal's JWKS so the gateway trusts instance tokens it signs."""
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict:
        return openid_configuration(url_holder["url"])

    @app.get("/oauth/discovery/keys")
    async def keys() -> dict:
        return jwks_document([key.public])

    return app


class Gateway:
    """`codesuggest gateway serve` as a child process, always on the same port."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        cmd = Path(sys.executable).with_name("codesuggest")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(cmd), "gateway", "serve", "--port", str(self.port), "--workers", "1"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"gateway exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{self.url}/monitoring/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway not ready in 60 s"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Clients:
    """Sends completions and remembers which request ids were answered with a 200."""

    def __init__(self, gateway_url: str, user_signer: Signer, portal_signer: Signer) -> None:
        self.url = gateway_url
        self.users = [f"user-{n}" for n in range(3)]
        self.user_tokens = {
            u: user_signer.mint(
                subject=u,
                audience=SERVICE,
                lifetime=3600,
                extra={
                    "gitlab_realm": "self-managed",
                    "gitlab_instance_id": INSTANCE_ID,
                    "scopes": [COMPLETE_CODE],
                },
            )[0]
            for u in self.users
        }
        self.instance_token = portal_signer.mint(
            subject=INSTANCE_ID,
            audience=[SERVICE],
            lifetime=3600,
            extra={
                "gitlab_realm": "self-managed",
                "gitlab_instance_id": INSTANCE_ID,
                "scopes": [COMPLETE_CODE, GENERATE_CODE],
            },
        )[0]
        self.answered: dict[str, str] = {}  # request id -> expected path
        self.attempted: set[str] = set()

    def request(self, n: int, telemetry: list[dict] | None = None) -> tuple[str, dict, dict]:
        user = self.users[n % len(self.users)]
        monolith = n % 4 == 3
        request_id = f"loss-{uuid.uuid4().hex}"
        headers = {
            "X-Request-ID": request_id,
            "X-Gitlab-Authentication-Type": "oidc",
            "X-Gitlab-Realm": "self-managed",
            "X-Gitlab-Instance-Id": INSTANCE_ID,
            "X-Gitlab-Global-User-Id": user,
            "Authorization": "Bearer "
            + (self.instance_token if monolith else self.user_tokens[user]),
        }
        body = {
            "prompt_version": 1,
            "current_file": {
                "file_name": "app/main.py",
                "content_above_cursor": f"def add_{n}(a, b):\n    ",
                "content_below_cursor": "\n",
            },
            "telemetry": telemetry or [],
        }
        return request_id, headers, {"body": body, "path": "monolith" if monolith else "direct"}

    async def send(self, http: httpx.AsyncClient, n: int, telemetry: list[dict] | None = None):
        request_id, headers, spec = self.request(n, telemetry)
        route = "/v2/code/completions" if spec["path"] == "monolith" else "/v2/completions"
        self.attempted.add(request_id)
        try:
            response = await http.post(self.url + route, json=spec["body"], headers=headers)
        except httpx.HTTPError:
            return None
        if response.status_code == 200:
            self.answered[request_id] = spec["path"]
        return response


async def stream(clients: Clients, count: int, kill_after: int | None, gateway: Gateway) -> None:
    """`count` completions from WORKERS concurrent clients; SIGKILL the gateway once
    `kill_after` have been answered, while the rest are in flight."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    target = len(clients.answered) + (kill_after or 0)
    enough, killed = asyncio.Event(), asyncio.Event()

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty() and not killed.is_set():
            await clients.send(http, queue.get_nowait())
            if len(clients.answered) >= target:
                enough.set()

    async def killer() -> None:
        await enough.wait()
        await asyncio.to_thread(gateway.kill)
        killed.set()

    async with httpx.AsyncClient(timeout=15) as http:
        tasks = [asyncio.create_task(worker(http)) for _ in range(WORKERS)]
        if kill_after is not None:
            tasks.append(asyncio.create_task(killer()))
        await asyncio.gather(*tasks)


async def test_no_usage_lost_across_gateway_kills_and_collector_outages(tmp_path):
    user_key, portal_key = PrivateKey.generate(), PrivateKey.generate()
    (tmp_path / "gateway").mkdir()
    key_file = tmp_path / "gateway" / "signing-key.pem"
    user_key.write(key_file)

    portal_url: dict = {}
    portal = ServerThread(portal_app(portal_key, portal_url)).start()
    portal_url["url"] = portal.url
    collector = Collector()
    collector_server = ServerThread(collector.app).start()

    env = {
        **os.environ,
        "CODESUGGEST_GATEWAY_DATA_DIR": str(tmp_path / "gateway"),
        "CODESUGGEST_GATEWAY_SIGNING_KEY_FILE": str(key_file),
        "CODESUGGEST_GATEWAY_TRUSTED_ISSUERS": f'[{{"url": "{portal.url}", "kind": "portal"}}]',
        "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "embedded",
        "CODESUGGEST_GATEWAY_USAGE__SINK": "http",
        "CODESUGGEST_GATEWAY_USAGE__HTTP_URL": f"{collector_server.url}/usage",
        "CODESUGGEST_GATEWAY_USAGE__HTTP_TOKEN": COLLECTOR_TOKEN,
        "CODESUGGEST_GATEWAY_USAGE__BATCH_SIZE": "20",
        "CODESUGGEST_GATEWAY_USAGE__FLUSH_INTERVAL": "0.05",
        "CODESUGGEST_GATEWAY_USAGE__LEASE_SECONDS": "2",
        "CODESUGGEST_GATEWAY_USAGE__SINK_TIMEOUT": "1",
        "CODESUGGEST_GATEWAY_USAGE__RETRY_INITIAL": "0.05",
        "CODESUGGEST_GATEWAY_USAGE__RETRY_MAX": "0.5",
        "CODESUGGEST_GATEWAY_LOG_LEVEL": "WARNING",
    }
    gateway = Gateway(env, free_port(), tmp_path / "gateway.log")
    clients = Clients(gateway.url, Signer(user_key, SERVICE), Signer(portal_key, portal.url))
    try:
        for round_ in range(KILLS):
            gateway.start()
            if round_ % 2 == 1:
                collector_server.stop()  # the collector is down for this whole gateway life
            await stream(clients, PER_ROUND, kill_after=PER_ROUND // 2, gateway=gateway)
            if round_ % 2 == 1:
                collector_server.start()  # same port: the gateway's sink URL stays valid

        # A last, undisturbed life: the client reports accepted suggestions (piggybacked
        # telemetry); then wait until every answered request's event reached the collector.
        gateway.start()
        telemetry_user = clients.users[0]
        async with httpx.AsyncClient(timeout=15) as http:
            for accepts in (2, 3):
                response = await clients.send(
                    http,
                    0,  # n=0: user-0 on the direct path
                    telemetry=[
                        {
                            "model_engine": "embedded",
                            "model_name": "kn",
                            "lang": "python",
                            "requests": 5,
                            "accepts": accepts,
                            "errors": 0,
                        }
                    ],
                )
                assert response is not None and response.status_code == 200
        deadline = time.monotonic() + 30
        while True:
            seen = {e.get("request_id") for e in collector.requested()}
            if set(clients.answered) <= seen:
                break
            assert time.monotonic() < deadline, (
                f"{len(set(clients.answered) - seen)} answered requests have no event"
            )
            await asyncio.sleep(0.05)
        gateway.terminate()
    finally:
        gateway.terminate()
        collector_server.stop()
        portal.stop()

    requested = collector.requested()
    per_request = Counter(e.get("request_id") for e in requested)
    answered = clients.answered
    assert len(answered) >= KILLS * PER_ROUND // 2  # a steady stream was really served
    assert len(clients.attempted) > len(answered) + 1  # kills cut requests off mid-flight
    assert collector.received >= len(collector.events)
    missing = [rid for rid in answered if per_request[rid] == 0]
    doubled = [rid for rid in answered if per_request[rid] > 1]
    assert missing == []
    assert doubled == []  # one event per answered completion, after dedupe by event_id
    # Events beyond the answered ones can only be requests in flight when the gateway died
    # (committed, then the process was killed before the client read the response).
    extra = set(per_request) - set(answered)
    assert extra <= clients.attempted
    assert len(extra) <= KILLS * WORKERS
    # Both paths, each recorded once with its own path.
    paths = {e["request_id"]: e["path"] for e in requested if e["request_id"] in answered}
    assert paths == answered
    assert "monolith" in paths.values() and "direct" in paths.values()
    # The telemetry piggyback: accepted counts appear in the report for the right user.
    rows = {row["key"]: row for row in summarize(collector.events.values(), GroupBy.user)}
    assert rows[telemetry_user]["accepted"] == 5
    assert all(rows[u]["accepted"] == 0 for u in clients.users[1:])
