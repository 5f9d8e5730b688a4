"""The usage event contract between the gateway, which records and ships events, and the
instance, which stores and reports on them: the event on the wire, the purpose claim of the token
a batch comes with, and the rules that turn events into a report's columns. Both parts import
this module, so neither can drift from the other (docs/usage.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from uuid_utils import uuid4

# The `purpose` claim of the gateway-signed token that authorizes a batch of events.
TOKEN_PURPOSE = "usage_events"

EventName = Literal[
    "code_suggestion_requested",
    "user_token_issued",
    "code_suggestion_shown",
    "code_suggestion_accepted",
    "code_suggestion_rejected",
]
Path = Literal["direct", "monolith"]

# The longest value the instance stores for each text field (its column sizes).
FIELD_LIMITS = {
    "realm": 32,
    "instance_id": 64,
    "global_user_id": 255,
    "host_name": 255,
    "language": 64,
    "model_provider": 255,
    "model_name": 255,
    "status": 128,
    "client_name": 255,
    "client_version": 64,
    "request_id": 128,
}


class UsageEvent(BaseModel):
    """One event; `event_id` makes storing it idempotent."""

    event_id: str = Field(default_factory=lambda: str(uuid4()), min_length=1, max_length=64)
    name: EventName
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    realm: str | None = None
    instance_id: str | None = None
    global_user_id: str | None = None
    host_name: str | None = None
    language: str | None = None
    model_provider: str | None = None
    model_name: str | None = None
    path: Path | None = None
    status: str | None = None  # "served" | "empty" | "error:<class>"
    latency_ms: float | None = None
    suggestion_chars: int | None = None
    count: int = Field(default=1, ge=0)  # for shown/accepted/rejected folded from telemetry
    client_name: str | None = None
    client_version: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Column:
    """A report column: the events named `event` (and, when set, with this exact `status`, a
    status starting with `status_prefix`, or this `path`), each counting 1, or its `count`
    when `weighted`."""

    event: EventName
    status: str | None = None
    status_prefix: str | None = None
    path: Path | None = None
    weighted: bool = False

    def value(self, event: Mapping[str, Any]) -> int:
        """What `event` (a stored or decoded event) adds to this column."""
        if event.get("name") != self.event:
            return 0
        status = str(event.get("status") or "")
        if self.status is not None and status != self.status:
            return 0
        if self.status_prefix is not None and not status.startswith(self.status_prefix):
            return 0
        if self.path is not None and event.get("path") != self.path:
            return 0
        if not self.weighted:
            return 1
        count = event.get("count")
        return 1 if count is None else int(count)


_REQUESTED: EventName = "code_suggestion_requested"
REPORT = {
    "requested": Column(_REQUESTED),
    "served": Column(_REQUESTED, status="served"),
    "empty": Column(_REQUESTED, status="empty"),
    "errors": Column(_REQUESTED, status_prefix="error"),
    "direct": Column(_REQUESTED, path="direct"),
    "monolith": Column(_REQUESTED, path="monolith"),
    "shown": Column("code_suggestion_shown", weighted=True),
    "accepted": Column("code_suggestion_accepted", weighted=True),
    "rejected": Column("code_suggestion_rejected", weighted=True),
    "tokens_issued": Column("user_token_issued"),
}
# What `codesuggest usage report` prints and `GET /api/v4/usage/report` answers, in order.
REPORT_COLUMNS = tuple(REPORT)


def acceptance_rate(row: Mapping[str, Any]) -> float | None:
    """Accepted over shown suggestions, or None when nothing was shown."""
    shown = int(row["shown"])
    return round(int(row["accepted"]) / shown, 4) if shown else None


def with_rate(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"acceptance_rate": acceptance_rate(row)}


def merge(*sources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of several sources joined by key (counts summed), sorted by key, with the rate."""
    rows: dict[str, dict[str, Any]] = {}
    for source in sources:
        for row in source:
            into = rows.setdefault(row["key"], dict.fromkeys(REPORT_COLUMNS, 0))
            for column in REPORT_COLUMNS:
                into[column] += int(row[column])
    return [with_rate({"key": key, **rows[key]}) for key in sorted(rows)]
