"""Builds the gateway's usage recorder from its settings (called from the app lifespan)."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

from codesuggest.common.usage import TOKEN_PURPOSE
from codesuggest.gateway.usage.events import NullRecorder
from codesuggest.gateway.usage.outbox import Outbox
from codesuggest.gateway.usage.settings import UsageSettings
from codesuggest.gateway.usage.sinks import HttpSink, JsonlSink, Sink, SnowplowSink
from codesuggest.tokens import Clock, Signer

TOKEN_LIFETIME = 300


class SignedToken:
    """A short-lived JWT signed with the gateway's key (`iss` = service name, `aud` = the
    collector, `purpose: usage_events`), re-minted a minute before it expires."""

    def __init__(self, signer: Signer, audience: str, clock: Clock) -> None:
        self.signer = signer
        self.audience = audience
        self.clock = clock
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self.clock.now() > self._expires - 60:
                self._token, claims = self.signer.mint(
                    subject=self.signer.issuer,
                    audience=self.audience,
                    lifetime=TOKEN_LIFETIME,
                    extra={"purpose": TOKEN_PURPOSE},
                )
                self._expires = claims["exp"]
            return self._token


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def make_sink(usage: UsageSettings, data_dir: Path, signer: Signer | None, clock: Clock) -> Sink:
    if usage.sink == "http":
        assert usage.http_url is not None  # checked by UsageSettings
        if usage.http_token is not None:
            secret = usage.http_token.get_secret_value()
            token = lambda: secret  # noqa: E731
        elif signer is not None:
            token = SignedToken(signer, usage.http_audience or origin(usage.http_url), clock)
        else:
            token = None
        return HttpSink(usage.http_url, token, timeout=usage.sink_timeout)
    if usage.sink == "snowplow":
        assert usage.snowplow_endpoint is not None
        return SnowplowSink(
            usage.snowplow_endpoint, app_id=usage.snowplow_app_id, timeout=usage.sink_timeout
        )
    return JsonlSink(usage.jsonl_path or data_dir / "usage.jsonl")


def make_recorder(
    usage: UsageSettings, *, data_dir: Path, signer: Signer | None, clock: Clock
) -> Outbox | NullRecorder:
    """The outbox for `usage` (or a `NullRecorder` when tracking is off); call `await
    recorder.start()` in the lifespan and `await recorder.aclose()` on shutdown."""
    if not usage.enabled:
        return NullRecorder()
    return Outbox(
        usage.outbox_path or data_dir / "usage-outbox.db",
        make_sink(usage, data_dir, signer, clock),
        batch_size=usage.batch_size,
        flush_interval=usage.flush_interval,
        lease_seconds=usage.lease_seconds,
        sink_timeout=usage.sink_timeout,
        retry_initial=usage.retry_initial,
        retry_max=usage.retry_max,
        keep_delivered=usage.keep_delivered,
        synchronous=usage.synchronous,
        close_timeout=usage.close_timeout,
        clock=clock,
    )
