"""The instance's calls to the gateway: time budget, faults, SaaS minting through the gateway,
and the monolith completion path (docs/contracts.md section 4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from instance.harness import Stack, stacks
from instance.slow_gateway import SlowGateway

COMPLETION = {
    "prompt_version": 1,
    "project_path": "group/project",
    "current_file": {
        "file_name": "app/files.py",
        "language_identifier": "python",
        "content_above_cursor": (
            "import os\n\n\ndef read_file(path):\n    with open(path) as f:\n        return f."
        ),
        "content_below_cursor": "\n",
    },
}


# SaaS here mints user tokens through the gateway (`saas_user_tokens=gateway`).
stack = stacks("gw", saas_user_tokens="gateway")


@pytest.fixture(scope="module")
def slow_gateway() -> Iterator[SlowGateway]:
    server = SlowGateway()
    yield server
    server.stop()


def test_user_token_is_minted_by_the_gateway_in_both_realms(stack: Stack) -> None:
    before = stack.mints
    response = stack.direct_access(stack.user())
    assert response.status_code == 201, response.text
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["iss"] == "gitlab-ai-gateway"
    assert claims["gitlab_realm"] == stack.realm
    assert stack.mints == before + 1
    sent = stack.gateway_counter.last_headers["/auth/v1/code/user_access_token"]
    assert sent["x-gitlab-authentication-type"] == "oidc"
    assert sent["x-gitlab-global-user-id"] == claims["sub"]
    assert sent["x-gitlab-realm"] == stack.realm
    assert sent["x-gitlab-instance-id"] == claims["gitlab_instance_id"]
    assert sent["x-gitlab-host-name"] == "127.0.0.1"
    assert sent["x-gitlab-version"] == stack.settings.version
    instance_claims = jwt.decode(
        sent["authorization"].removeprefix("Bearer "), options={"verify_signature": False}
    )
    if stack.realm == "saas":
        assert instance_claims["iss"] == stack.settings.url
        assert instance_claims["sub"] == claims["gitlab_instance_id"]
        assert instance_claims["aud"] == ["gitlab-ai-gateway"]
        assert instance_claims["scopes"] == ["complete_code", "generate_code"]
        assert instance_claims["exp"] - instance_claims["iat"] == 3600
    else:
        assert instance_claims["iss"] == stack.portal.server.url


def test_slow_gateway_is_503_within_the_budget(stack: Stack, slow_gateway: SlowGateway) -> None:
    pat = stack.user()
    stack.set("edge_url", slow_gateway.url)
    try:
        started = time.monotonic()
        response = stack.direct_access(pat)
        elapsed = time.monotonic() - started
    finally:
        stack.set("edge_url", "")
    assert response.status_code == 503
    assert response.json()["error"] == "gateway_timeout"
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert 0.9 <= elapsed < 2.5  # budget is 1 s in these stacks (upper margin: a busy CI)


@pytest.mark.stacks(realm="self-managed", backend="sqlite")  # one 3 s case is enough
def test_default_budget_is_3_seconds(stack: Stack, slow_gateway: SlowGateway) -> None:
    pat = stack.user()
    stack.set("edge_url", slow_gateway.url)
    stack.ctx.settings.gateway_timeout = 3.0
    try:
        started = time.monotonic()
        response = stack.direct_access(pat)
        elapsed = time.monotonic() - started
    finally:
        stack.ctx.settings.gateway_timeout = 1.0
        stack.set("edge_url", "")
    assert response.status_code == 503
    assert "3 s" in response.json()["message"]
    assert 2.9 <= elapsed < 4.5  # about 3 s, never the 5 s client timeout or later


def test_gateway_down_is_503(stack: Stack) -> None:
    pat = stack.user()
    stack.set("edge_url", "http://127.0.0.1:9")
    try:
        response = stack.direct_access(pat)
    finally:
        stack.set("edge_url", "")
    assert response.status_code == 503
    assert response.json()["error"].startswith("gateway_unreachable")


def _complete(stack: Stack, pat: str, body: dict, **headers: str) -> httpx.Response:
    return stack.http.post(
        "/api/v4/code_suggestions/completions",
        json=body,
        headers={"PRIVATE-TOKEN": pat, **headers},
    )


def test_monolith_path_routes_by_intent_with_instance_token_and_headers(stack: Stack) -> None:
    pat = stack.user()
    before = dict(stack.gateway_counter.counts)
    responses = [
        _complete(stack, pat, COMPLETION),
        _complete(stack, pat, {**COMPLETION, "intent": "completion"}),
        _complete(stack, pat, {**COMPLETION, "intent": "generation", "user_instruction": "add"}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    assert all(r.json()["object"] == "text_completion" for r in responses)
    counts = stack.gateway_counter.counts
    assert counts["/v2/code/completions"] - before.get("/v2/code/completions", 0) == 2
    assert counts["/v2/code/generations"] - before.get("/v2/code/generations", 0) == 1
    sent = stack.gateway_counter.last_headers["/v2/code/completions"]
    claims = jwt.decode(
        sent["authorization"].removeprefix("Bearer "), options={"verify_signature": False}
    )
    assert "token_kind" not in claims and claims["iss"] != "gitlab-ai-gateway"  # instance token
    assert sent["x-gitlab-realm"] == stack.realm
    assert sent["x-gitlab-global-user-id"]
    first = stack.gateway_counter.last_headers["/v2/code/generations"]
    assert first["x-gitlab-instance-id"] == sent["x-gitlab-instance-id"]


def test_monolith_path_propagates_request_id(stack: Stack) -> None:
    response = _complete(stack, stack.user(), COMPLETION, **{"X-Request-ID": "req-abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc-123"
    assert stack.gateway_counter.last_headers["/v2/code/completions"]["x-request-id"] == (
        "req-abc-123"
    )


def test_monolith_path_checks_pat_and_seat_before_the_gateway(stack: Stack) -> None:
    before = stack.gateway_calls()
    no_pat = stack.http.post("/api/v4/code_suggestions/completions", json=COMPLETION)
    no_seat = _complete(stack, stack.user(seat=False), COMPLETION)
    read_api = _complete(stack, stack.user(scopes=("read_api",)), COMPLETION)
    assert (no_pat.status_code, no_pat.json()) == (401, {"message": "401 Unauthorized"})
    assert no_seat.status_code == 403 and "seat" in no_seat.json()["message"]
    assert read_api.json()["error"] == "insufficient_scope"
    assert stack.gateway_calls() == before


def test_monolith_path_allows_60_a_minute(stack: Stack) -> None:
    stack.clock.set(float(int(stack.clock.now()) // 60 * 60 + 1))
    pat = stack.user()
    before = stack.gateway_counter.counts["/v2/code/completions"]
    statuses = [_complete(stack, pat, COMPLETION).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 429
    assert stack.gateway_counter.counts["/v2/code/completions"] - before == 60


def test_monolith_path_returns_the_same_completion_as_the_direct_path(stack: Stack) -> None:
    pat = stack.user()
    details = stack.direct_access(pat).json()
    direct = httpx.post(
        details["base_url"] + "/v2/completions",
        json=COMPLETION,
        headers={"Authorization": f"Bearer {details['token']}", **details["headers"]},
        timeout=30,
    )
    via_instance = _complete(stack, pat, COMPLETION)
    assert direct.status_code == via_instance.status_code == 200, (direct.text, via_instance.text)
    assert via_instance.json()["choices"] == direct.json()["choices"]
    assert via_instance.json()["choices"], "the embedded model should suggest something"
    # The gateway's stage timings come through the instance too.
    stages = dict(
        part.strip().split(";dur=") for part in via_instance.headers["server-timing"].split(",")
    )
    assert {"auth", "model", "total"} <= set(stages)


def test_a_pinned_model_applies_on_the_monolith_path(stack: Stack) -> None:
    pat = stack.user()
    stack.set("model_provider", "openai")
    stack.set("model_name", "pinned-model")
    try:
        details = stack.direct_access(pat).json()
        refused = _complete(stack, pat, COMPLETION)
    finally:
        stack.set("model_provider", "")
        stack.set("model_name", "")
    assert details["model_details"] == {"model_provider": "openai", "model_name": "pinned-model"}
    # This gateway serves only the embedded engine: the pinned provider reached it and was named.
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "model_provider"]
    assert _complete(stack, pat, COMPLETION).status_code == 200


def test_monolith_path_relays_a_stream(stack: Stack) -> None:
    pat = stack.user()
    with stack.http.stream(
        "POST",
        "/api/v4/code_suggestions/completions",
        json={**COMPLETION, "stream": True},
        headers={"PRIVATE-TOKEN": pat},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert "data:" in text


def test_monolith_path_passes_on_which_client_asked(stack: Stack) -> None:
    """The gateway records the IDE's User-Agent and language-server version on both paths."""
    client = {
        "User-Agent": "gitlab-language-server:8.54.0 (vscode:1.99.0)",
        "X-Gitlab-Language-Server-Version": "8.54.0",
    }
    assert _complete(stack, stack.user(), COMPLETION, **client).status_code == 200
    sent = stack.gateway_counter.last_headers["/v2/code/completions"]
    assert sent["user-agent"] == client["User-Agent"]
    assert sent["x-gitlab-language-server-version"] == "8.54.0"
