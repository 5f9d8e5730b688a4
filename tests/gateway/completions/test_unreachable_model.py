"""A real gateway whose model server (the openai provider) is a closed port on loopback: the
client learns that the model is unreachable, without the gateway's internal URL, and the
gateway's log names the provider and its URL, never its key."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from codesuggest.common.model_server import MODEL_UNREACHABLE
from codesuggest.gateway.completions.settings import CompletionsSettings
from gateway.completions.routes_env import (
    INSTANCE_ID,
    USER_ID,
    completion_body,
    saas_gateway,
    wait_until,
)
from instance.logcapture import capture_logs, release
from support.issuer import instance_headers

API_KEY = "sk-never-logged-0123456789"


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """Bound but not listening: every connection to it is refused while the test holds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, closed_port):  # type: ignore[no-untyped-def]
    completions = CompletionsSettings(
        provider="openai",
        openai_base_url=f"http://127.0.0.1:{closed_port}/v1",
        openai_model="qwen2.5-coder-1.5b",
        openai_api_key=API_KEY,
        embedded_enabled=False,
    )
    with saas_gateway(tmp_path_factory.mktemp("gateway"), completions) as running:
        yield running


@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_model_is_a_503_that_says_so(gateway, closed_port, stream):
    server, saas, clock = gateway
    token = saas.user_token(USER_ID, INSTANCE_ID, clock=clock)
    headers = instance_headers(token, INSTANCE_ID, realm="saas")
    headers["X-Gitlab-Global-User-Id"] = USER_ID
    handler = capture_logs()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            wait_until(lambda: c.get("/monitoring/ready").status_code == 200, what="ready")
            r = c.post("/v2/completions", json=completion_body(stream=stream), headers=headers)
    finally:
        release(handler)
    assert r.status_code == 503
    assert r.json() == {"detail": MODEL_UNREACHABLE}
    assert r.headers["retry-after"] == "5"
    assert str(closed_port) not in r.text and "127.0.0.1" not in r.text
    lines = [json.loads(line) for line in handler.lines if "unreachable" in line]
    assert lines, handler.text
    assert lines[-1]["event"] == "model server unreachable"
    assert lines[-1]["provider"] == "openai"
    assert lines[-1]["base_url"] == f"http://127.0.0.1:{closed_port}/v1"
    assert API_KEY not in handler.text
