"""`SuggestionClient`: one warm client an editor keeps for its lifetime.

It picks the path for each request: generations go through the monolith; completions go
direct when connection details are at hand and the circuit breaker is closed, and fall back
to the monolith when the direct call fails. It folds telemetry into each request and reports
path changes through a status callback.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from codesuggest.client.breaker import CircuitBreaker
from codesuggest.client.clock import Clock, SystemClock
from codesuggest.client.details import ConnectionDetails, DetailsManager, StatusCallback
from codesuggest.client.intent import COMPLETION, detect_intent
from codesuggest.client.telemetry import Telemetry
from codesuggest.client.transports import (
    PathFailed,
    Refused,
    Reply,
    Unauthorized,
    new_http_client,
    post_direct,
    post_monolith,
)

DIRECT = "direct"
MONOLITH = "monolith"


def client_version() -> str:
    try:
        return version("codesuggest")
    except PackageNotFoundError:
        return "0.0.0"


class CompletionFailed(Exception):
    """No path could serve the request; `state` is the status to show the user."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass(frozen=True)
class CompletionInput:
    file_name: str
    content_above_cursor: str
    content_below_cursor: str
    language_identifier: str | None = None
    project_path: str | None = None
    intent: str | None = None  # None: detect from the text around the cursor


@dataclass
class Suggestion:
    id: str
    text: str | None  # None: the model had nothing to suggest
    path: str  # "direct" or "monolith"
    intent: str
    model_engine: str
    model_name: str
    lang: str
    timings: dict[str, Any] = field(default_factory=dict)


class SuggestionClient:
    def __init__(
        self,
        instance_url: str,
        token: str,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        on_status: StatusCallback | None = None,
        project_path: str | None = None,
    ) -> None:
        self.instance_url = instance_url.rstrip("/")
        self._token = token
        self._clock = clock or SystemClock()
        self._owns_http = http is None
        self._http = http or new_http_client(timeout)
        self._on_status = on_status
        self._last_state: str | None = None
        self.version = client_version()
        self.breaker = CircuitBreaker(self._clock)
        self.telemetry = Telemetry()
        self._last_model = ("", "", "")  # (engine, name, lang) of the last suggestion
        self.details = DetailsManager(
            self._http,
            self.instance_url,
            token,
            self._clock,
            on_status=self._status,
            project_path=project_path,
        )

    async def aclose(self) -> None:
        await self.details.aclose()
        if self._owns_http:
            await self._http.aclose()

    async def complete(self, request: CompletionInput, via_monolith: bool = False) -> Suggestion:
        """A suggestion for `request`; `via_monolith` skips the direct path (diagnostics,
        benchmarks)."""
        intent = request.intent or detect_intent(
            request.content_above_cursor, request.content_below_cursor
        )
        items = self.telemetry.drain()
        payload = _payload(request, items)
        timings: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            if via_monolith:
                reply, path = await self._monolith(intent, payload, timings), MONOLITH
            else:
                reply, path = await self._serve(intent, payload, timings)
        except CompletionFailed:
            self.telemetry.restore(items)
            engine, name, lang = self._last_model
            self.telemetry.error(engine, name, request.language_identifier or lang)
            raise
        except BaseException:
            self.telemetry.restore(items)
            raise
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        suggestion = _suggestion(reply, path, intent, request, timings)
        self._last_model = (suggestion.model_engine, suggestion.model_name, suggestion.lang)
        self.telemetry.request(*self._last_model)
        return suggestion

    async def _serve(
        self, intent: str, payload: dict[str, Any], timings: dict[str, Any]
    ) -> tuple[Reply, str]:
        if intent != COMPLETION:
            return await self._monolith(intent, payload, timings), MONOLITH
        details = await self._details(timings)
        if details is None or not self.breaker.allow():
            return await self._monolith(intent, payload, timings), MONOLITH
        try:
            reply = await self._direct(details, payload, timings)
        except Unauthorized:
            self.breaker.record_success()  # the gateway answered: the path is up
            self.details.invalidate(details.token)
            fresh = await self._details(timings)
            if fresh is None:
                return await self._monolith(intent, payload, timings), MONOLITH
            try:
                reply = await self._direct(fresh, payload, timings)
            except (Unauthorized, Refused, PathFailed) as exc:
                self._path_failed(exc)
                return await self._monolith(intent, payload, timings), MONOLITH
        except (Refused, PathFailed) as exc:
            self._path_failed(exc)
            return await self._monolith(intent, payload, timings), MONOLITH
        except asyncio.CancelledError:
            self.breaker.release_probe()
            raise
        self.breaker.record_success()
        self._status(DIRECT, "completions go straight to the gateway")
        return reply, DIRECT

    def _path_failed(self, exc: Exception) -> None:
        if isinstance(exc, PathFailed):
            self.breaker.record_failure()
            pause = self.breaker.open_for
            message = f"direct path failed ({exc}); using the instance for {pause:g}s"
        else:
            self.breaker.record_success()
            message = f"gateway refused the request ({exc}); using the instance"
        self._status(MONOLITH, message)

    async def _details(self, timings: dict[str, Any]) -> ConnectionDetails | None:
        calls = self.details.stats.calls
        t0 = time.perf_counter()
        details = await self.details.get()
        waited = (time.perf_counter() - t0) * 1000
        timings["details_ms"] = round(timings.get("details_ms", 0.0) + waited, 3)
        timings["details_fetched"] = timings.get("details_fetched", False) or (
            self.details.stats.calls != calls
        )
        return details

    async def _direct(
        self, details: ConnectionDetails, payload: dict[str, Any], timings: dict[str, Any]
    ) -> Reply:
        body = dict(payload)
        if details.model_details:
            body.setdefault("model_provider", details.model_details.get("model_provider"))
            body.setdefault("model_name", details.model_details.get("model_name"))
        body = {k: v for k, v in body.items() if v is not None}
        t0 = time.perf_counter()
        try:
            return await post_direct(self._http, details, body, self.version)
        finally:
            timings["direct_ms"] = round((time.perf_counter() - t0) * 1000, 3)

    async def _monolith(
        self, intent: str, payload: dict[str, Any], timings: dict[str, Any]
    ) -> Reply:
        body = dict(payload, intent=intent)
        t0 = time.perf_counter()
        try:
            reply = await post_monolith(
                self._http, self.instance_url, self._token, body, self.version
            )
        except Unauthorized as exc:
            self._status("unauthorized", f"the instance refused the token: {exc}")
            raise CompletionFailed("unauthorized", str(exc)) from exc
        except Refused as exc:
            if exc.status == 403:  # no seat, or a token without the needed scope
                self._status("unauthorized", f"not authorized for code suggestions: {exc.message}")
                raise CompletionFailed("unauthorized", str(exc)) from exc
            self._status("error", f"the instance could not serve the request: {exc}")
            raise CompletionFailed("error", str(exc)) from exc
        except PathFailed as exc:
            self._status("error", f"the instance could not serve the request: {exc}")
            raise CompletionFailed("error", str(exc)) from exc
        finally:
            timings["monolith_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        if intent == COMPLETION and self._last_state != MONOLITH:
            self._status(MONOLITH, "completions go through the instance")
        return reply

    def _status(self, state: str, message: str) -> None:
        if state == self._last_state:
            return
        self._last_state = state
        if self._on_status is not None:
            self._on_status(state, message)


def _payload(request: CompletionInput, telemetry: list[dict[str, object]]) -> dict[str, Any]:
    current_file: dict[str, Any] = {
        "file_name": request.file_name,
        "content_above_cursor": request.content_above_cursor,
        "content_below_cursor": request.content_below_cursor,
    }
    if request.language_identifier:
        current_file["language_identifier"] = request.language_identifier
    payload: dict[str, Any] = {
        "prompt_version": 1,
        "current_file": current_file,
        "stream": False,
        "telemetry": telemetry,
    }
    if request.project_path:
        payload["project_path"] = request.project_path
    return payload


def _suggestion(
    reply: Reply, path: str, intent: str, request: CompletionInput, timings: dict[str, Any]
) -> Suggestion:
    body = reply.body
    choices = body.get("choices") or []
    text = None
    if choices and isinstance(choices[0], dict):
        text = choices[0].get("text") or None
    described = body.get("model")
    model = described if isinstance(described, dict) else {}
    timings["request_ms"] = round(reply.seconds * 1000, 3)
    timings["server_timing_ms"] = reply.server_timing
    return Suggestion(
        id=str(body.get("id") or uuid.uuid4().hex),
        text=text,
        path=path,
        intent=intent,
        model_engine=str(model.get("engine", "")),
        model_name=str(model.get("name", "")),
        lang=str(model.get("lang") or request.language_identifier or ""),
        timings=timings,
    )
