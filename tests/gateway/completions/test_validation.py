"""422 naming the field: every limit of docs/contracts.md section 6 and unknown models."""

from __future__ import annotations

import json

import pytest

from gateway.completions.routes_env import completion_body

BIG = "x" * 100_001


def _file(**fields):  # type: ignore[no-untyped-def]
    body = completion_body()
    body["current_file"].update(fields)
    return body


OVER_LIMIT = {
    "file_name": (_file(file_name="a" * 256), ["body", "current_file", "file_name"]),
    "content_above_cursor": (
        _file(content_above_cursor=BIG),
        ["body", "current_file", "content_above_cursor"],
    ),
    "content_below_cursor": (
        _file(content_below_cursor=BIG),
        ["body", "current_file", "content_below_cursor"],
    ),
    "context.content": (
        completion_body(context=[{"type": "file", "name": "u.py", "content": BIG}]),
        ["body", "context", 0, "content"],
    ),
    "telemetry": (
        completion_body(telemetry=[{"requests": 1}] * 11),
        ["body", "telemetry"],
    ),
    "context": (
        completion_body(context=[{"type": "file", "name": "u.py", "content": "x"}] * 101),
        ["body", "context"],
    ),
}


@pytest.mark.parametrize("field", list(OVER_LIMIT))
def test_over_limit_is_422_naming_the_field(gw, field):
    body, loc = OVER_LIMIT[field]
    with gw.client() as c:
        r = c.post("/v2/completions", json=body, headers=gw.user_headers())
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [loc]
    assert len(r.content) < 2_000  # the 100,000-character field is named, not echoed back
    assert "server-timing" in r.headers
    assert gw.model.requests == []
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:invalid_request"


def test_at_the_limits_is_accepted(gw):
    body = _file(file_name="a" * 252 + ".py", content_above_cursor="x = 1\n" * 16_666)
    body["telemetry"] = [{"requests": 1}] * 10
    body["context"] = [{"type": "file", "name": "u.py", "content": "y"}] * 100
    with gw.client() as c:
        r = c.post("/v2/completions", json=body, headers=gw.user_headers())
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"model_provider": "vertex-ai"}, "model_provider"),
        ({"model_provider": "openai", "model_name": "gpt-17"}, "model_name"),
        ({"model_name": "gpt-17"}, "model_name"),
    ],
)
def test_unknown_model_is_422_naming_the_field(gw, overrides, field):
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(**overrides), headers=gw.user_headers())
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["input"] == overrides[field]


def test_litellm_is_an_alias_of_openai(gw):
    with gw.client() as c:
        r = c.post(
            "/v2/completions",
            json=completion_body(model_provider="litellm"),
            headers=gw.user_headers(),
        )
    assert r.status_code == 200
    assert r.json()["model"]["engine"] == "openai"


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"current_file": {}}'])
def test_malformed_body_is_422(gw, raw):
    headers = {**gw.user_headers(), "Content-Type": "application/json"}
    with gw.client() as c:
        r = c.post("/v2/completions", content=raw, headers=headers)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


def test_open_tabs_as_the_gitlab_language_server_sends_them_reach_the_prompt(gw):
    """It names each tab by URI (longer than a file name may be) and adds fields of its own."""
    deep = "/home/dev/" + "nested%20dir/" * 30 + "util.py"
    body = completion_body(
        context=[
            {
                "type": "file",
                "name": f"file://{deep}",
                "content": "def frobnicate_widgets(a, b):\n    return a\n",
                "resolution_strategies": ["open_tabs"],
            }
        ]
    )
    with gw.client() as c:
        r = c.post("/v2/completions", json=body, headers=gw.user_headers())
    assert r.status_code == 200, r.text
    (sent,) = gw.model.requests
    prompt = json.dumps(sent)
    assert "def frobnicate_widgets(a, b)" in prompt
    assert deep.replace("%20", " ") in prompt and "file://" not in prompt
