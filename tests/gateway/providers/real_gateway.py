"""A real gateway on loopback, trusting a real portal issuer, over a real model provider."""

from __future__ import annotations

import json
import re
import socket
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
