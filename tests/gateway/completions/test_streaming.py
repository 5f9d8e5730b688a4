"""`"stream": true`: real SSE frames, read with httpx-sse, and the stream's error mapping."""

from __future__ import annotations

import json

import httpx
from httpx_sse import connect_sse

from gateway.completions.routes_env import completion_body, wait_until


def _events(gw, body):  # type: ignore[no-untyped-def]
    with (
        gw.client() as c,
        connect_sse(c, "POST", "/v2/completions", json=body, headers=gw.user_headers()) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert "prompt;dur=" in source.response.headers["server-timing"]
        return [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def test_chunks_then_done(gw):
    gw.model.chunks = ["return", " a", " +", " b\n", "\ndef other():\n", "    pass\n"]
    events = _events(gw, completion_body(stream=True))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"message"}
    streamed = "".join(data["text"] for kind, data in events if kind == "message")
    done = events[-1][1]
    assert done["text"] == "return a + b" == streamed
    assert done["model"] == {"engine": "openai", "name": "fake-starcoder2", "lang": "python"}
    assert {"auth", "prompt", "model"} <= set(done["timings"])
    assert gw.model.requests[-1]["stream"] is True
    wait_until(lambda: gw.usage.named("code_suggestion_requested"), what="usage event")
    event = gw.usage.named("code_suggestion_requested")[-1]
    assert event.status == "served" and event.suggestion_chars == len("return a + b")


def test_429_before_the_first_chunk_is_a_429(gw):
    gw.model.behavior, gw.model.status = "error", 429
    gw.model.headers = {"retry-after": "3"}
    with gw.client() as c:
        r = c.post("/v2/completions", json=completion_body(stream=True), headers=gw.user_headers())
    assert r.status_code == 429
    assert r.json() == {"detail": "Too many requests. Please try again later."}
    assert r.headers["retry-after"] == "3"


def test_failure_mid_stream_is_an_error_event(gw):
    gw.model.behavior = "broken_stream"
    gw.model.chunks = ["x = 1\n", "    y = 2\n"]
    events = _events(gw, completion_body(stream=True))
    assert events[-1] == ("error", {"detail": "Inference failed"})
    wait_until(lambda: gw.usage.named("code_suggestion_requested"), what="usage event")
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:unavailable"


def test_client_leaving_a_stream_stops_the_model(gw):
    gw.model.behavior = "slow_stream"
    gw.model.chunks = ["items = [\n", "        1,\n"]
    body = completion_body(stream=True)
    body["current_file"]["content_above_cursor"] = "def f():\n    "
    with (
        gw.client() as c,
        c.stream("POST", "/v2/completions", json=body, headers=gw.user_headers()) as response,
    ):
        assert response.status_code == 200
        next(response.iter_bytes())  # the stream is running; now walk away
    assert gw.model.disconnected.wait(5), "the model stream was not closed"
    wait_until(lambda: gw.usage.named("code_suggestion_requested"), what="usage event")
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:cancelled"


def test_client_leaving_before_the_answer_stops_the_model(gw):
    gw.model.behavior = "hang"
    with gw.client(timeout=0.3) as c:
        try:
            c.post("/v2/completions", json=completion_body(), headers=gw.user_headers())
        except httpx.ReadTimeout:
            pass
    assert gw.model.disconnected.wait(5), "the model call was not cancelled"
    wait_until(lambda: gw.usage.named("code_suggestion_requested"), what="usage event")
    assert gw.usage.named("code_suggestion_requested")[-1].status == "error:cancelled"
