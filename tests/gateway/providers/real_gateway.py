"""A real gateway on loopback, trusting a real portal issuer, over a real model provider."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from codesuggest.gateway.app import create_app
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from gateway.completions.routes_env import MemoryRecorder
from support.issuer import Issuer, instance_headers, wait_until
from support.models import file_body
from support.servers import ServerThread

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"


@dataclass
class RealGateway:
    app: FastAPI
    server: ServerThread
    portal: Issuer

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=timeout)

    def headers(self) -> dict[str, str]:
        return instance_headers(self.portal.instance_token(INSTANCE_ID), INSTANCE_ID)


@contextmanager
def real_gateway(data_dir: Path, completions: CompletionsSettings) -> Iterator[RealGateway]:
    portal = Issuer("self-managed").start()
    settings = GatewaySettings(
        trusted_issuers=[TrustedIssuer(url=portal.url, kind="portal")],
        data_dir=data_dir,
        completions=completions,
    )
    app = create_app(settings)
    server = ServerThread(app).start(timeout=120)
    app.state.ctx.usage = MemoryRecorder()
    gateway = RealGateway(app, server, portal)
    try:
        with gateway.client() as c:
            wait_until(
                lambda: c.get("/monitoring/ready").status_code == 200, 120, what="gateway ready"
            )
        yield gateway
    finally:
        server.stop()
        portal.stop()


def server_timing(response: httpx.Response) -> dict[str, float]:
    parts = (p.strip().split(";dur=") for p in response.headers["server-timing"].split(","))
    return {name: float(value) for name, value in parts}


def metrics_of(engine: Any) -> dict[str, float]:
    """An xllamacpp Server's own counters (`llamacpp:<name>`), read in process."""
    text = engine.handle_metrics()
    return {
        name: float(value)
        for name, value in re.findall(r"^llamacpp:(\w+) (\S+)$", text, flags=re.MULTILINE)
    }


def settled_metrics(engine: Any) -> dict[str, float]:
    """The counters once no request is in progress (a slot's counts land when it is released,
    which may be just after its answer left)."""
    wait_until(lambda: metrics_of(engine)["requests_processing"] == 0, 60, what="engine idle")
    return metrics_of(engine)


def raw_request(gw: RealGateway, path: str, body: dict[str, Any]) -> socket.socket:
    """An HTTP request on a bare socket, so a test can drop the connection mid-generation."""
    payload = json.dumps(body).encode()
    headers = {**gw.headers(), "Content-Type": "application/json"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection(("127.0.0.1", gw.server.port))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


# A list the model can go on with for all of a 512-token generation.
COUNTING = "numbers = [\n" + "".join(f"    {i},\n" for i in range(1, 40))


@dataclass(frozen=True)
class Abandoned:
    predicted: float
    """Tokens the engine generated for the request."""
    freed_after: float
    """Seconds from the client leaving until the engine had nothing in progress."""
    rest_of_generation: float
    """Seconds the rest of the 512 tokens would have taken, at the rate the engine measured."""


def abandon_a_generation(gw: RealGateway, engine: Any) -> Abandoned:
    """Ask `gw` for a 512-token generation that `engine` (an xllamacpp Server) runs, leave once
    it is decoding, and wait until the engine is idle."""
    body = file_body("app/numbers.py", COUNTING, "", user_instruction="continue the list")
    before = settled_metrics(engine)
    sock = raw_request(gw, "/v2/code/generations", body)
    try:
        wait_until(
            lambda: metrics_of(engine)["n_decode_total"] - before["n_decode_total"] >= 8,
            60,
            what="generation under way",
        )
    finally:
        sock.close()
    left = time.perf_counter()
    wait_until(lambda: metrics_of(engine)["requests_processing"] == 0, 60, what="idle")
    freed_after = time.perf_counter() - left
    after = metrics_of(engine)
    predicted = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    seconds = after["tokens_predicted_seconds_total"] - before["tokens_predicted_seconds_total"]
    rest = (512 - predicted) * seconds / predicted if predicted else float("inf")
    return Abandoned(predicted, freed_after, rest)
