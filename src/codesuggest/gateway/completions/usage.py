"""Usage events of a completion request: one `code_suggestion_requested` per authenticated
request, plus the client's `telemetry` folded into shown/accepted/rejected counts.

Telemetry rule (per item): shown = requests - errors; accepted = accepts; rejected = `rejects`
when the client sends it, else shown - accepts. Zero counts produce no event.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from codesuggest.common.logs import get_logger
from codesuggest.gateway.auth import Caller
from codesuggest.gateway.completions.models import Telemetry
from codesuggest.gateway.usage.events import UsageEvent

log = get_logger("codesuggest.gateway.completions.usage")


def _who(caller: Caller, request: Request, when: datetime) -> dict[str, object]:
    return {
        "timestamp": when,
        "realm": caller.realm,
        "instance_id": caller.instance_id,
        "global_user_id": caller.global_user_id,
        "host_name": caller.host_name,
        "path": caller.path,
        "client_name": caller.client_name,
        "client_version": caller.client_version,
        "request_id": getattr(request.state, "request_id", None),
    }


def telemetry_events(items: list[Telemetry], who: dict[str, object]) -> list[UsageEvent]:
    events = []
    for item in items:
        shown = max(0, item.requests - item.errors)
        rejected = item.rejects if item.rejects is not None else max(0, shown - item.accepts)
        for name, count in (
            ("code_suggestion_shown", shown),
            ("code_suggestion_accepted", item.accepts),
            ("code_suggestion_rejected", rejected),
        ):
            if count > 0:
                events.append(
                    UsageEvent(
                        name=name,  # type: ignore[arg-type]
                        count=count,
                        language=item.lang,
                        model_provider=item.model_engine,
                        model_name=item.model_name,
                        **who,  # type: ignore[arg-type]
                    )
                )
    return events


def submit_request(
    request: Request,
    caller: Caller,
    *,
    status: str,
    telemetry: list[Telemetry] = (),  # type: ignore[assignment]
    language: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    latency_ms: float | None = None,
    suggestion_chars: int | None = None,
) -> Awaitable[None]:
    """Start recording the request's events; await the result before answering. A failing
    recorder is logged, never turned into a failed completion."""
    when = datetime.fromtimestamp(request.app.state.clock.now(), UTC)
    who = _who(caller, request, when)
    requested = UsageEvent(
        name="code_suggestion_requested",
        status=status,
        language=language,
        model_provider=provider,
        model_name=model,
        latency_ms=None if latency_ms is None else round(latency_ms, 3),
        suggestion_chars=suggestion_chars,
        **who,  # type: ignore[arg-type]
    )
    try:
        pending = request.app.state.usage.submit(requested, *telemetry_events(list(telemetry), who))
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


async def record_request(request: Request, caller: Caller, **fields: Any) -> None:
    """Record the request's events durably before returning."""
    await submit_request(request, caller, **fields)
