"""Usage events of a completion request: one `code_suggestion_requested` per authenticated
request, plus the client's `telemetry` folded into shown/accepted/rejected counts.

Telemetry rule (per item): shown = requests - errors; accepted = accepts; rejected = `rejects`
when the client sends it, else shown - accepts. Zero counts produce no event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from codesuggest.common.logs import get_logger
from codesuggest.common.usage import EventName, UsageEvent
from codesuggest.gateway.completions.schemas import Telemetry

if TYPE_CHECKING:
    from codesuggest.gateway.completions.service import RequestInfo

log = get_logger("codesuggest.gateway.completions.usage")


def _who(info: RequestInfo, when: datetime) -> dict[str, Any]:
    caller = info.caller
    return {
        "timestamp": when,
        "realm": caller.realm,
        "instance_id": caller.instance_id,
        "global_user_id": caller.global_user_id,
        "host_name": caller.host_name,
        "path": caller.path,
        "client_name": caller.client_name,
        "client_version": caller.client_version,
        "request_id": info.request_id,
    }


def telemetry_events(items: Sequence[Telemetry], who: dict[str, Any]) -> list[UsageEvent]:
    events = []
    for item in items:
        shown = max(0, item.requests - item.errors)
        rejected = item.rejects if item.rejects is not None else max(0, shown - item.accepts)
        counts: tuple[tuple[EventName, int], ...] = (
            ("code_suggestion_shown", shown),
            ("code_suggestion_accepted", item.accepts),
            ("code_suggestion_rejected", rejected),
        )
        for name, count in counts:
            if count > 0:
                events.append(
                    UsageEvent(
                        name=name,
                        count=count,
                        language=item.lang,
                        model_provider=item.model_engine,
                        model_name=item.model_name,
                        **who,
                    )
                )
    return events


def submit_request(
    info: RequestInfo,
    *,
    status: str,
    telemetry: Sequence[Telemetry] = (),
    language: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    latency_ms: float | None = None,
    suggestion_chars: int | None = None,
) -> Awaitable[None]:
    """Start recording the request's events; await the result before answering. A failing
    recorder is logged, never turned into a failed completion."""
    when = datetime.fromtimestamp(info.clock.now(), UTC)
    who = _who(info, when)
    requested = UsageEvent(
        name="code_suggestion_requested",
        status=status,
        language=language,
        model_provider=provider,
        model_name=model,
        latency_ms=None if latency_ms is None else round(latency_ms, 3),
        suggestion_chars=suggestion_chars,
        **who,
    )
    try:
        pending = info.usage.submit(requested, *telemetry_events(telemetry, who))
    except Exception as exc:  # usage must never take completions down
        log.error("usage events not recorded", error=f"{type(exc).__name__}: {exc}")
        pending = None
    return _settled(pending)


async def _settled(pending: Awaitable[None] | None) -> None:
    if pending is None:
        return
    try:
        await pending
    except Exception as exc:  # usage must never take completions down
        log.error("usage events not recorded", error=f"{type(exc).__name__}: {exc}")
