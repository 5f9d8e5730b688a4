"""Usage tracking settings: the `usage` field of the gateway settings.

With the gateway's `env_nested_delimiter="__"` each field is read from
`CODESUGGEST_GATEWAY_USAGE__<FIELD>` (e.g. `CODESUGGEST_GATEWAY_USAGE__SINK=http`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class UsageSettings(BaseModel):
    enabled: bool = True
    sink: Literal["jsonl", "http", "snowplow"] = "jsonl"
    jsonl_path: Path | None = None
    """Default `<data_dir>/usage.jsonl`."""
    outbox_path: Path | None = None
    """Default `<data_dir>/usage-outbox.db`."""
    http_url: str | None = None
    """Collector URL for the `http` sink, e.g. `https://instance.example/api/v4/usage/events`."""
    http_token: SecretStr | None = None
    """Static bearer token for the `http` sink. Without one, the gateway signs a short-lived JWT
    with its own key (`aud` = `http_audience`)."""
    http_audience: str | None = None
    """`aud` of the signed JWT; default: the origin of `http_url` (the instance URL)."""
    snowplow_endpoint: str | None = None
    """Collector base URL, e.g. `https://collector.example` (tracker POSTs to `/tp2`)."""
    snowplow_app_id: str = "codesuggest-gateway"
    batch_size: int = Field(default=200, ge=1, le=5000)
    flush_interval: float = Field(default=1.0, gt=0)
    """Seconds between shipper polls when fewer than `batch_size` events wait."""
    lease_seconds: float = Field(default=30.0, gt=0)
    """How long a shipper owns claimed rows; a crashed process's rows are re-leased after it."""
    sink_timeout: float = Field(default=10.0, gt=0)
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=60.0, gt=0)
    keep_delivered: float = Field(default=3600.0, ge=0)
    """Seconds delivered rows stay in the outbox (for inspection) before they are pruned."""
    synchronous: Literal["FULL", "NORMAL"] = "NORMAL"
    """SQLite `synchronous` for the outbox (WAL mode). NORMAL: a committed event survives the
    gateway process dying (SIGKILL included: tests/e2e/test_usage_loss.py), and costs ~0.03 ms;
    FULL also survives an OS crash or power loss, at an fsync per group commit (~0.2 ms)."""
    close_timeout: float = Field(default=5.0, ge=0)
    """On shutdown, how long to keep shipping what is pending before leaving it for next start."""

    @model_validator(mode="after")
    def _sink_has_destination(self) -> UsageSettings:
        if not self.enabled:
            return self
        if self.sink == "http" and not self.http_url:
            raise ValueError("usage.sink=http needs usage.http_url")
        if self.sink == "snowplow" and not self.snowplow_endpoint:
            raise ValueError("usage.sink=snowplow needs usage.snowplow_endpoint")
        if self.lease_seconds <= self.sink_timeout:
            raise ValueError("usage.lease_seconds must exceed usage.sink_timeout")
        return self
