"""Where the shipper delivers usage events. A sink acknowledges a batch by returning; any
exception means "not delivered" and the outbox retries the batch later. Delivery is
at-least-once, so every sink's reader dedupes by `event_id`.

Each batch is a list of events already serialized as JSON objects (one string per event).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from snowplow_tracker import Emitter, SelfDescribingJson, Tracker
from snowplow_tracker.events import SelfDescribing

from codesuggest.common.serving import PEER_KEEPALIVE_EXPIRY

SNOWPLOW_SCHEMA = "iglu:com.codesuggest/usage_event/jsonschema/1-0-0"


class SinkError(Exception):
    """The sink did not acknowledge the batch. `permanent`: it refused the batch as invalid
    (retrying the same events cannot succeed), as opposed to being unavailable."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    name: str

    async def deliver(self, batch: list[str]) -> None: ...

    async def aclose(self) -> None: ...


class JsonlSink:
    """Appends one JSON object per line, fsynced per batch. Several processes may append to the
    same file: each batch is written under an exclusive `flock` in a single `write`."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    async def deliver(self, batch: list[str]) -> None:
        data = "".join(line + "\n" for line in batch).encode()
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc}") from exc

    async def aclose(self) -> None:
        return None


TokenProvider = Callable[[], str]
PERMANENT_STATUSES = frozenset({400, 413, 422})
"""Collector answers that mean "this batch is invalid" (401/403/429/5xx are worth a retry)."""


class HttpSink:
    """POSTs `{"events": [...]}` to a collector; any 2xx acknowledges the whole batch. The
    collector must be idempotent by `event_id` (a batch may be sent again after a crash)."""

    name = "http"

    def __init__(
        self, url: str, token: TokenProvider | None = None, *, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.token = token
        self.http = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=PEER_KEEPALIVE_EXPIRY,
            ),
        )

    async def deliver(self, batch: list[str]) -> None:
        body = ('{"events":[' + ",".join(batch) + "]}").encode()
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            response = await self.http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise SinkError(
                f"collector answered {response.status_code}: {response.text[:200]}",
                permanent=response.status_code in PERMANENT_STATUSES,
            )

    async def aclose(self) -> None:
        await self.http.aclose()


class _OneShotEmitter(Emitter):
    """The tracker's emitter without its own retry timer: the outbox owns retries."""

    def _retry_failed_events(self, failed_events: Any) -> None:
        return None


def _snowplow_eid(event_id: str) -> str | None:
    """Our `event_id` doubles as the Snowplow `eid` (so the pipeline dedupes) when it is a UUID."""
    try:
        return str(uuid.UUID(event_id))
    except (ValueError, TypeError, AttributeError):
        return None


class SnowplowSink:
    """Sends self-describing events (schema `SNOWPLOW_SCHEMA`) with `snowplow-tracker` to a
    Snowplow collector (`POST <endpoint>/com.snowplowanalytics.snowplow/tp2`), one request per
    batch."""

    name = "snowplow"

    def __init__(
        self, endpoint: str, *, app_id: str = "codesuggest-gateway", timeout: float = 10.0
    ) -> None:
        import requests

        self.endpoint = endpoint
        self.app_id = app_id
        self.timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()

    def _send(self, batch: list[str]) -> None:
        failures: list[Any] = []
        emitter = _OneShotEmitter(
            self.endpoint,
            protocol="https",
            method="post",
            batch_size=len(batch) + 1,
            request_timeout=self.timeout,
            on_failure=lambda _ok, failed: failures.extend(failed),
            session=self._session,
        )
        tracker = Tracker(
            namespace="codesuggest", emitters=emitter, app_id=self.app_id, encode_base64=True
        )
        for line in batch:
            data = json.loads(line)
            event = SelfDescribing(
                SelfDescribingJson(SNOWPLOW_SCHEMA, data),
                true_timestamp=_epoch_ms(data.get("timestamp")),
            )
            payload = tracker.complete_payload(event)
            eid = _snowplow_eid(data.get("event_id"))
            if eid is not None:
                payload.nv_pairs["eid"] = eid
            emitter.input(payload.nv_pairs)
        with self._lock:
            emitter.flush()
        if failures:
            raise SinkError(f"collector refused {len(failures)} of {len(batch)} events")

    async def deliver(self, batch: list[str]) -> None:
        await asyncio.to_thread(self._send, batch)

    async def aclose(self) -> None:
        self._session.close()


def _epoch_ms(timestamp: Any) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp() * 1000
    except ValueError:
        return None
