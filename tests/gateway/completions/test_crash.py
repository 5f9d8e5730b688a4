"""A bug on the hot path (the completion routes, served by the gateway's middleware outside
FastAPI's error layer): the client gets the gateway's 500 shape, never the exception, the log
says `unhandled error` once with the path (the server logs the traceback), the request is
counted as a 500, and the gateway goes on serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from codesuggest.gateway import middleware
from codesuggest.tokens import ManualClock
from gateway.completions.routes_env import (
    INSTANCE_ID,
    USER_ID,
    completion_body,
    saas_gateway,
    wait_until,
)
from instance.logcapture import capture_logs, release
from support.issuer import Issuer, instance_headers
from support.servers import ServerThread

SECRET = "the-bug-s-own-words-0123"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[tuple[ServerThread, Issuer, ManualClock]]:
    with saas_gateway(tmp_path_factory.mktemp("gateway")) as running:
        yield running


def test_a_crash_in_a_completion_is_the_gateway_s_500_and_the_gateway_serves_on(
    gateway, monkeypatch
):
    server, saas, clock = gateway
    token = saas.user_token(USER_ID, INSTANCE_ID, clock=clock)
    headers = instance_headers(token, INSTANCE_ID, realm="saas")
    headers["X-Gitlab-Global-User-Id"] = USER_ID
    service = server.app.state.ctx.completions

    async def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(SECRET)

    with httpx.Client(base_url=server.url, timeout=10) as c:
        wait_until(lambda: c.get("/monitoring/ready").status_code == 200, what="ready")
        handler = capture_logs()
        try:
            with monkeypatch.context() as patch:
                patch.setattr(service, "complete", broken)
                crashed = c.post("/v2/completions", json=completion_body(), headers=headers)
        finally:
            release(handler)
    # The server closes a connection whose request crashed (as for any route): a new one.
    with httpx.Client(base_url=server.url, timeout=10) as c:
        served = c.post("/v2/completions", json=completion_body(), headers=headers)
        metrics = c.get("/metrics").text
    assert crashed.status_code == 500
    assert crashed.json() == {"detail": "Internal server error"}
    assert SECRET not in crashed.text and "Traceback" not in crashed.text
    assert crashed.headers["x-request-id"]
    logged = [json.loads(line) for line in handler.lines if "unhandled error" in line]
    assert [(e["path"], e["error_type"]) for e in logged] == [("/v2/completions", "RuntimeError")]
    assert served.status_code == 200, served.text
    assert 'codesuggest_gateway_requests_total{route="/v2/completions",status="500"} 1.0' in metrics


def test_a_crash_in_the_middleware_itself_is_the_gateway_s_500_too(gateway, monkeypatch):
    """Before any route: the gateway's 500 shape and request id, not the server's plain 500."""
    server, _, _ = gateway

    def broken(path: str) -> str | None:
        raise RuntimeError(SECRET)

    with httpx.Client(base_url=server.url, timeout=10) as c:
        handler = capture_logs()
        try:
            with monkeypatch.context() as patch:
                patch.setattr(middleware, "gateway_path", broken)
                crashed = c.get("/monitoring/ready")
        finally:
            release(handler)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        served = c.get("/monitoring/ready")
    assert crashed.status_code == 500
    assert crashed.json() == {"detail": "Internal server error"}
    assert SECRET not in crashed.text and crashed.headers["x-request-id"]
    logged = [json.loads(line) for line in handler.lines if "unhandled error" in line]
    assert [(e["path"], e["error_type"]) for e in logged] == [("/monitoring/ready", "RuntimeError")]
    assert served.status_code == 200
