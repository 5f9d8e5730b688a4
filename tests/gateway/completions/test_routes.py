"""The completion routes with real tokens against a real gateway and a loopback model server."""

from __future__ import annotations

import re

import pytest

from gateway.completions.routes_env import MODEL, completion_body

ROUTES = ["/v2/completions", "/v2/code/completions", "/ai/v2/completions"]


@pytest.mark.parametrize("route", ROUTES)
def test_user_token_gets_the_contract_shape(gw, route):
    with gw.client() as c:
        r = c.post(route, json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "object", "created", "model", "experiments", "choices", "metadata"}
    assert body["object"] == "text_completion"
    assert body["created"] == int(gw.clock.now())
    assert body["model"] == {"engine": "openai", "name": MODEL, "lang": "python"}
    assert body["experiments"] == []
    assert body["choices"] == [{"text": "return a + b", "index": 0, "finish_reason": "length"}]
    assert body["metadata"] == {"enabled_feature_flags": []}


def test_server_timing_names_every_stage(gw):
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    stages = dict(re.findall(r"(\w+);dur=([\d.]+)", r.headers["server-timing"]))
    assert {"auth", "parse", "prompt", "model", "post", "answer", "total"} == set(stages)
    assert float(stages["model"]) > 0
    # The stages are measured apart from the total and add up to it (3 decimals each).
    measured = sum(float(v) for name, v in stages.items() if name != "total")
    assert measured <= float(stages["total"]) + 0.003


def test_model_receives_prefix_and_suffix(gw):
    body = completion_body()
    body["current_file"]["content_below_cursor"] = "\n\nprint(add(1, 2))\n"
    with gw.client() as c:
        c.post("/v2/completions", json=body, headers=gw.user_headers())
    sent = gw.model.requests[-1]
    assert sent["model"] == MODEL  # the name tells the family: StarCoder2's FIM tokens
    assert sent["prompt"].endswith(
        "<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>"
    )
    assert "suffix" not in sent
    assert sent["stream"] is True  # streamed upstream, so a client leaving stops the server


def test_fim_family_is_chosen_by_model_name(gw):
    body = completion_body(model_provider="openai", model_name="qwen2.5-coder-1.5b")
    with gw.client() as c:
        r = c.post("/v2/completions", json=body, headers=gw.user_headers())
    assert r.json()["model"]["name"] == "qwen2.5-coder-1.5b"
    prompt = gw.model.requests[-1]["prompt"]
    assert prompt.startswith("<|repo_name|>group/project\n")
    assert prompt.endswith("<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>")
    assert "suffix" not in gw.model.requests[-1]


def test_output_is_post_processed(gw):
    gw.model.text = "return a + b   \n\ndef other():\n    pass\n"
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.json()["choices"][0]["text"] == "return a + b"


@pytest.mark.parametrize("text", ["", "   \n  ", "# TODO: write this\n# later"])
def test_no_suggestion_gives_empty_choices(gw, text):
    gw.model.text = text
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 200
    assert r.json()["choices"] == []
    assert gw.usage.named("code_suggestion_requested")[-1].status == "empty"


def test_language_from_extension_then_identifier(gw):
    body = completion_body()
    body["current_file"].update(file_name="src/app.ts", language_identifier="python")
    with gw.client() as c:
        assert (
            c.post("/v2/completions", json=body, headers=gw.user_headers()).json()["model"]["lang"]
            == "typescript"
        )
        body["current_file"].update(file_name="Makefile", language_identifier="typescriptreact")
        r = c.post("/v2/completions", json=body, headers=gw.user_headers())
    assert r.json()["model"]["lang"] == "typescript"


def test_provider_429_maps_to_429_with_retry_after(gw):
    gw.model.behavior, gw.model.status = "error", 429
    gw.model.headers = {"retry-after": "7"}
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 429
    assert r.json() == {"detail": "Too many requests. Please try again later."}
    assert r.headers["retry-after"] == "7"
    assert "model;dur=" in r.headers["server-timing"]
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:rate_limited"


@pytest.mark.parametrize("status", [500, 502, 401, 400])
def test_provider_failure_maps_to_503(gw, status):
    gw.model.behavior, gw.model.status = "error", status
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 503
    assert r.json() == {"detail": "Inference failed"}
    assert r.headers["retry-after"] == "5"
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:unavailable"


def test_malformed_provider_answer_maps_to_503(gw):
    gw.model.behavior = "garbage"
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 503
    assert r.json() == {"detail": "Inference failed"}


def test_provider_timeout_maps_to_503_and_drops_the_call(gw):
    gw.model.behavior = "hang"
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
    assert r.status_code == 503
    assert r.json() == {"detail": "Inference failed"}
    assert gw.model.disconnected.wait(5), "the model call was not closed on timeout"
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:timeout"


def test_generations_need_an_instance_token(gw):
    body = completion_body(user_instruction="write a function that adds two numbers")
    with gw.client() as c:
        refused = c.post("/v2/code/generations", json=body, headers=gw.user_headers())
        served = c.post("/v2/code/generations", json=body, headers=gw.instance_headers())
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Unauthorized to access code generations"}
    assert served.status_code == 200, served.text
    assert served.json()["choices"][0]["text"] == "return a + b"
    assert gw.model.requests[-1]["max_tokens"] == 512
    event = gw.usage.named("code_suggestion_requested")[-1]
    assert event.path == "monolith"


def test_instance_token_reaches_completions_via_monolith_path(gw):
    with gw.client() as c:
        r = c.post("/v2/code/completions", json=completion_body(), headers=gw.instance_headers())
    assert r.status_code == 200
    event = gw.usage.named("code_suggestion_requested")[-1]
    assert event.path == "monolith"
    assert event.realm == "self-managed"


def test_refused_auth_still_carries_server_timing(gw):
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body())
    assert r.status_code == 401
    assert r.json() == {"error": "No authorization header presented"}
    assert "auth;dur=" in r.headers["server-timing"]
    assert gw.usage.events == []


def test_stage_latencies_are_exported(gw):
    with gw.client() as c:
        c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
        text = c.get("/metrics").text
    for stage in ("prompt", "model", "post", "post.scope", "post.brackets"):
        line = f'codesuggest_gateway_completion_stage_seconds_count{{stage="{stage}"}}'
        assert line in text, stage
