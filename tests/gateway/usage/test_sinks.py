"""The three sinks against real files and real loopback HTTP servers."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.usage.recorder import SignedToken, make_sink
from codesuggest.gateway.usage.settings import UsageSettings
from codesuggest.gateway.usage.sinks import (
    SNOWPLOW_SCHEMA,
    HttpSink,
    JsonlSink,
    SinkError,
    SnowplowSink,
)
from codesuggest.tokens import LocalKeySet, ManualClock, PrivateKey, Signer, Verifier
from support.servers import ServerThread


def batch(n: int, **fields) -> list[str]:
    return [
        UsageEvent(name="code_suggestion_requested", request_id=f"r{i}", **fields).model_dump_json()
        for i in range(n)
    ]


async def test_jsonl_sink_appends_one_line_per_event(tmp_path):
    path = tmp_path / "sub" / "usage.jsonl"
    sink = JsonlSink(path)
    first, second = batch(3), batch(2, language="go")
    await sink.deliver(first)
    await sink.deliver(second)
    lines = path.read_text().splitlines()
    assert lines == first + second
    assert json.loads(lines[-1])["language"] == "go"
    assert path.stat().st_mode & 0o777 == 0o600


def test_jsonl_appends_from_many_writers_never_interleave(tmp_path):
    path = tmp_path / "usage.jsonl"
    sink = JsonlSink(path)
    batches = [batch(50, instance_id=f"i{w}" * 200) for w in range(8)]  # ~1 MB in all
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: sink._append("".join(x + "\n" for x in b).encode()), batches))
    lines = path.read_text().splitlines()
    assert len(lines) == 400
    assert all(json.loads(line)["name"] == "code_suggestion_requested" for line in lines)


async def test_http_sink_posts_the_batch_with_the_token(fresh_collector):
    sink = HttpSink(fresh_collector.url, lambda: "s3cret")
    try:
        events = batch(4, global_user_id="u1")
        await sink.deliver(events)
        assert set(fresh_collector.events) == {json.loads(e)["event_id"] for e in events}
        assert fresh_collector.authorizations == ["Bearer s3cret"]
        stored = next(iter(fresh_collector.events.values()))
        assert stored["global_user_id"] == "u1"
    finally:
        await sink.aclose()


async def test_http_sink_raises_on_refusal_and_on_no_connection(fresh_collector):
    fresh_collector.fail_next = 1
    sink = HttpSink(fresh_collector.url)
    try:
        with pytest.raises(SinkError, match="503"):
            await sink.deliver(batch(1))
    finally:
        await sink.aclose()
    dead = HttpSink("http://127.0.0.1:9/events", timeout=2)
    try:
        with pytest.raises(SinkError):
            await dead.deliver(batch(1))
    finally:
        await dead.aclose()


async def test_signed_token_verifies_for_the_instance_and_is_reused():
    key = PrivateKey.generate()
    clock = ManualClock()
    signer = Signer(key, "gitlab-ai-gateway", clock)
    provider = SignedToken(signer, "http://instance.test", clock)
    token = provider()
    verifier = Verifier(
        [LocalKeySet("gitlab-ai-gateway", [key.public])], "http://instance.test", clock=clock
    )
    claims = await verifier.verify(token)
    assert claims["iss"] == "gitlab-ai-gateway"
    assert claims["aud"] == "http://instance.test"
    assert claims["purpose"] == "usage_events"
    assert provider() == token
    clock.advance(250)  # within a minute of expiry: a new one
    assert provider() != token


def test_http_sink_from_settings_signs_for_the_collector_origin(tmp_path):
    signer = Signer(PrivateKey.generate(), "gitlab-ai-gateway")
    usage = UsageSettings(sink="http", http_url="http://inst.test:8082/api/v4/usage/events")
    sink = make_sink(usage, tmp_path, signer, ManualClock())
    assert isinstance(sink, HttpSink)
    assert isinstance(sink.token, SignedToken)
    assert sink.token.audience == "http://inst.test:8082"
    static = make_sink(
        UsageSettings(sink="http", http_url="http://c.test/e", http_token="tok"),
        tmp_path,
        signer,
        ManualClock(),
    )
    assert static.token() == "tok"
    assert make_sink(UsageSettings(), tmp_path, None, ManualClock()).path == (
        tmp_path / "usage.jsonl"
    )


def test_settings_refuse_a_sink_without_a_destination():
    with pytest.raises(ValueError, match="http_url"):
        UsageSettings(sink="http")
    with pytest.raises(ValueError, match="snowplow_endpoint"):
        UsageSettings(sink="snowplow")
    assert UsageSettings(enabled=False, sink="http").enabled is False


class SnowplowCollector:
    """Speaks the Snowplow collector's POST protocol (tp2) and keeps what it received."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        self.lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/com.snowplowanalytics.snowplow/tp2")(self._tp2)

    async def _tp2(self, request: Request) -> JSONResponse:
        with self.lock:
            self.posts.append(
                {"content_type": request.headers["content-type"], "body": await request.json()}
            )
            return JSONResponse({}, status_code=self.status)


@pytest.fixture(scope="module")
def snowplow():
    collector = SnowplowCollector()
    with ServerThread(collector.app) as server:
        collector.url = server.url
        yield collector


async def test_snowplow_sink_sends_self_describing_events(snowplow):
    snowplow.posts.clear()
    snowplow.status = 200
    sink = SnowplowSink(snowplow.url, app_id="gw-test")
    events = batch(3, global_user_id="u9", language="rust")
    try:
        await sink.deliver(events)
    finally:
        await sink.aclose()
    assert len(snowplow.posts) == 1  # one request per batch
    post = snowplow.posts[0]
    assert post["content_type"].startswith("application/json")
    body = post["body"]
    assert body["schema"].startswith("iglu:com.snowplowanalytics.snowplow/payload_data/")
    sent = {json.loads(e)["event_id"]: json.loads(e) for e in events}
    assert len(body["data"]) == 3
    for item in body["data"]:
        assert item["e"] == "ue"
        assert item["aid"] == "gw-test"
        envelope = json.loads(base64.urlsafe_b64decode(item["ue_px"] + "=="))
        assert (
            envelope["schema"]
            == "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
        )
        assert envelope["data"]["schema"] == SNOWPLOW_SCHEMA
        data = envelope["data"]["data"]
        assert item["eid"] == data["event_id"]  # our id is Snowplow's event id: it dedupes
        assert data == sent[data["event_id"]]
        assert data["language"] == "rust"
    assert {item["eid"] for item in body["data"]} == set(sent)


async def test_snowplow_sink_raises_when_the_collector_refuses(snowplow):
    snowplow.posts.clear()
    snowplow.status = 500
    sink = SnowplowSink(snowplow.url)
    try:
        with pytest.raises(SinkError, match="refused 2 of 2"):
            await sink.deliver(batch(2))
    finally:
        await sink.aclose()
        snowplow.status = 200
    assert len(snowplow.posts) == 1  # no retry of its own: the outbox owns retries


def test_settings_read_from_the_documented_env_names(monkeypatch):
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Host(BaseSettings):  # the gateway settings' env config, with `usage` nested
        model_config = SettingsConfigDict(
            env_prefix="CODESUGGEST_GATEWAY_", env_nested_delimiter="__", extra="ignore"
        )
        usage: UsageSettings = UsageSettings()

    monkeypatch.setenv("CODESUGGEST_GATEWAY_USAGE__SINK", "http")
    monkeypatch.setenv("CODESUGGEST_GATEWAY_USAGE__HTTP_URL", "http://c.test/usage")
    monkeypatch.setenv("CODESUGGEST_GATEWAY_USAGE__HTTP_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("CODESUGGEST_GATEWAY_USAGE__BATCH_SIZE", "50")
    usage = Host().usage
    assert (usage.sink, usage.http_url, usage.batch_size) == ("http", "http://c.test/usage", 50)
    assert usage.http_token.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(usage)  # the token never shows in logs or reprs
