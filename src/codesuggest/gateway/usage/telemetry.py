"""Client telemetry piggybacked on completion requests, folded into usage events.

Each item of a request's `telemetry` list reports, since the client's previous report, how many
suggestion `requests` it made for a model/language, how many it `accepts`ed and how many ended in
`errors`. They become counted events (`count` = the number): shown = requests - errors,
accepted = accepts, rejected = shown - accepts. Zero counts produce no event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from codesuggest.gateway.usage.events import UsageEvent

_CARRIED = (
    "realm",
    "instance_id",
    "global_user_id",
    "host_name",
    "path",
    "client_name",
    "client_version",
    "request_id",
)


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def telemetry_events(items: Iterable[Any], context: UsageEvent) -> list[UsageEvent]:
    """Events for the telemetry `items` (dicts or pydantic models), attributed like `context`
    (the request's `code_suggestion_requested` event: same user, instance, path, client)."""
    carried = {name: getattr(context, name) for name in _CARRIED}
    events: list[UsageEvent] = []
    for item in items:
        requests, accepts, errors = (
            _count(_get(item, k)) for k in ("requests", "accepts", "errors")
        )
        shown = max(0, requests - errors)
        counts = {
            "code_suggestion_shown": shown,
            "code_suggestion_accepted": accepts,
            "code_suggestion_rejected": max(0, shown - accepts),
        }
        for name, count in counts.items():
            if count:
                events.append(
                    UsageEvent(
                        name=name,  # type: ignore[arg-type]
                        count=count,
                        timestamp=context.timestamp,
                        language=_get(item, "lang"),
                        model_provider=_get(item, "model_engine"),
                        model_name=_get(item, "model_name"),
                        **carried,
                    )
                )
    return events
