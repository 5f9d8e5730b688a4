"""One `code_suggestion_requested` per authenticated request, plus folded client telemetry."""

from __future__ import annotations

import pytest

from gateway.completions.routes_env import INSTANCE_ID, USER_ID, completion_body


def test_requested_event_is_filled_from_caller_and_request(gw):
    headers = {**gw.user_headers(), "X-Request-ID": "req-123", "User-Agent": "gitlab-lsp/1.0"}
    with gw.client() as c:
        c.post("/v2/completions", json=completion_body(), headers=headers)
    (event,) = gw.usage.events
    assert event.name == "code_suggestion_requested"
    assert (event.realm, event.instance_id, event.global_user_id) == ("saas", INSTANCE_ID, USER_ID)
    assert (event.model_provider, event.model_name, event.language) == (
        "openai", "fake-starcoder2", "python",
    )  # fmt: skip
    assert event.path == "direct" and event.status == "served"
    assert event.request_id == "req-123" and event.client_name == "gitlab-lsp/1.0"
    assert event.suggestion_chars == len("return a + b") and event.latency_ms > 0
    assert event.timestamp.timestamp() == pytest.approx(gw.clock.now())


def test_telemetry_becomes_shown_accepted_rejected(gw):
    telemetry = [
        {"model_engine": "openai", "model_name": "fake-starcoder2", "lang": "python",
         "requests": 5, "accepts": 2, "errors": 1},
        {"model_engine": "openai", "model_name": "fake-starcoder2", "lang": "go",
         "requests": 3, "accepts": 0, "errors": 0, "rejects": 1},
    ]  # fmt: skip
    with gw.client() as c:
        c.post(
            "/v2/completions", json=completion_body(telemetry=telemetry), headers=gw.user_headers()
        )
    counts = sorted(
        (e.name, e.language, e.count)
        for e in gw.usage.events
        if e.name != "code_suggestion_requested"
    )
    assert counts == [
        ("code_suggestion_accepted", "python", 2),
        ("code_suggestion_rejected", "go", 1),
        ("code_suggestion_rejected", "python", 2),  # shown 4 - accepted 2
        ("code_suggestion_shown", "go", 3),
        ("code_suggestion_shown", "python", 4),  # requests 5 - errors 1
    ]
    assert len(gw.usage.named("code_suggestion_requested")) == 1
    assert all(e.global_user_id == USER_ID for e in gw.usage.events)
