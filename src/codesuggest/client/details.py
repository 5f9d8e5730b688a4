"""Connection details for the direct path: fetched from the instance's `direct_access`,
kept in memory, refreshed in the background before they expire.

Times: `expires_at` is the server's epoch seconds. The offset between the server's clock
(its `Date` header) and ours is measured on every fetch, so a laptop clock that is minutes
off still refreshes in time. Refresh is due at 80% of the lifetime and never later than 60 s
before expiry; one fetch is in flight at a time, and once warm a completion never waits for
one. A refused fetch (403 "Direct connections are disabled", 401) sends completions through
the monolith and is retried only after a back-off of 10 minutes that grows to 1 hour;
429 honors `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from codesuggest.client.clock import Clock
from codesuggest.client.responses import error_message

DIRECT_ACCESS_PATH = "/api/v4/code_suggestions/direct_access"
DISABLED_MESSAGE = "Direct connections are disabled"
REFRESH_FRACTION = 0.8
REFRESH_AT_LATEST = 60.0  # seconds before expiry
EXPIRY_MARGIN = 5.0  # a token this close to expiry is not sent any more
REFUSED_BACKOFF = 600.0
REFUSED_BACKOFF_MAX = 3600.0
FAILURE_RETRY = 30.0  # instance unreachable or 5xx: try again this much later
DEFAULT_RETRY_AFTER = 60.0
TIMER_CHECK_MAX = 30.0  # the idle refresh timer re-reads the clock at least this often

StatusCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ConnectionDetails:
    base_url: str
    token: str
    expires_at: float
    headers: dict[str, str]
    model_details: dict[str, str] | None
    clock_offset: float  # server clock minus ours, at fetch time
    refresh_at: float  # on our clock

    def server_now(self, local_now: float) -> float:
        return local_now + self.clock_offset

    def usable(self, local_now: float) -> bool:
        return self.server_now(local_now) < self.expires_at - EXPIRY_MARGIN


@dataclass
class FetchStats:
    """What `direct_access` calls happened, and the last one's status (tests read them)."""

    calls: int = 0
    last_status: int | None = None
    history: list[float] = field(default_factory=list)  # local clock of each call


class DetailsManager:
    def __init__(
        self,
        http: httpx.AsyncClient,
        instance_url: str,
        token: str,
        clock: Clock,
        on_status: StatusCallback | None = None,
        project_path: str | None = None,
    ) -> None:
        self._http = http
        self._instance_url = instance_url.rstrip("/")
        self._token = token
        self._clock = clock
        self._on_status = on_status or (lambda _state, _message: None)
        self._project_path = project_path
        self._details: ConnectionDetails | None = None
        self._blocked_until = 0.0
        self._refusals = 0
        self._inflight: asyncio.Task[ConnectionDetails | None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.stats = FetchStats()
        self.timer_check = TIMER_CHECK_MAX  # tests with a moved clock shorten it

    @property
    def details(self) -> ConnectionDetails | None:
        return self._details

    @property
    def blocked_until(self) -> float:
        return self._blocked_until

    async def get(self) -> ConnectionDetails | None:
        """Details to call the gateway with, or None: take the monolith path.

        Warm: returns at once, starting a background refresh when one is due. Cold or
        expired: waits for the (shared) fetch, unless fetching is backed off."""
        now = self._clock.now()
        details = self._details
        if details is not None and details.usable(now):
            if now >= details.refresh_at and now >= self._blocked_until:
                self._start_fetch()
            return details
        if now < self._blocked_until:
            return None
        task = self._start_fetch()
        # shielded: a cancelled completion must not cancel the fetch others wait on
        return await asyncio.shield(task)

    def invalidate(self, token: str) -> None:
        """The gateway refused `token` (401): forget it so the next `get` fetches anew."""
        if self._details is not None and self._details.token == token:
            self._details = None

    async def aclose(self) -> None:
        for task in (self._inflight, self._timer):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _start_fetch(self) -> asyncio.Task[ConnectionDetails | None]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._fetch())
        return self._inflight

    async def _fetch(self) -> ConnectionDetails | None:
        started = self._clock.now()
        self.stats.calls += 1
        self.stats.history.append(started)
        body = {"project_path": self._project_path} if self._project_path else None
        try:
            response = await self._http.post(
                self._instance_url + DIRECT_ACCESS_PATH,
                headers={"PRIVATE-TOKEN": self._token},
                json=body,
            )
        except httpx.HTTPError as exc:
            self.stats.last_status = None
            self._blocked_until = self._clock.now() + FAILURE_RETRY
            self._on_status(
                "error",
                f"instance unreachable at {self._instance_url}: {type(exc).__name__} (is the "
                "stack running? `codesuggest up` starts it on this machine)",
            )
            return self._still_usable()
        self.stats.last_status = response.status_code
        now = self._clock.now()
        if response.status_code in (200, 201):
            return self._accept(response, now)
        message = error_message(response)
        if response.status_code == 429:
            self._blocked_until = now + _retry_after(response, now)
            self._on_status("monolith", "direct_access rate limited; using the instance")
            return self._still_usable()
        if response.status_code in (401, 403):
            self._details = None
            self._refusals += 1
            backoff = min(REFUSED_BACKOFF * 2 ** (self._refusals - 1), REFUSED_BACKOFF_MAX)
            self._blocked_until = now + backoff
            if response.status_code == 403 and DISABLED_MESSAGE in message:
                self._on_status("monolith", DISABLED_MESSAGE)
            else:
                self._on_status("unauthorized", message or f"HTTP {response.status_code}")
            return None
        self._blocked_until = now + FAILURE_RETRY
        self._on_status("error", f"direct_access failed: HTTP {response.status_code} {message}")
        return self._still_usable()

    def _accept(self, response: httpx.Response, now: float) -> ConnectionDetails | None:
        try:
            data = response.json()
            expires_at = float(data["expires_at"])
            details_base = str(data["base_url"]).rstrip("/")
            token = str(data["token"])
            headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            self._blocked_until = now + FAILURE_RETRY
            self._on_status("error", "direct_access answered with an unreadable body")
            return self._still_usable()
        offset = _server_clock_offset(response, now)
        lifetime = max(expires_at - (now + offset), 0.0)
        refresh_in = max(min(REFRESH_FRACTION * lifetime, lifetime - REFRESH_AT_LATEST), 0.0)
        self._details = ConnectionDetails(
            base_url=details_base,
            token=token,
            expires_at=expires_at,
            headers=headers,
            model_details=data.get("model_details") or None,
            clock_offset=offset,
            refresh_at=now + refresh_in,
        )
        self._refusals = 0
        self._blocked_until = 0.0
        self._arm_timer()
        return self._details

    def _still_usable(self) -> ConnectionDetails | None:
        details = self._details
        return details if details is not None and details.usable(self._clock.now()) else None

    def _arm_timer(self) -> None:
        """Refresh even when nobody asks for completions, so an idle editor stays warm."""
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._refresh_when_due())

    async def _refresh_when_due(self) -> None:
        while self._details is not None:
            wait = max(self._details.refresh_at, self._blocked_until) - self._clock.now()
            if wait <= 0:
                await asyncio.shield(self._start_fetch())
                wait = 1.0  # never spin, whatever the server said
            await asyncio.sleep(min(wait, self.timer_check))


def _server_clock_offset(response: httpx.Response, local_now: float) -> float:
    """Server time minus ours, from the response `Date` (the last one if a proxy added
    another); 0 when there is none."""
    values = response.headers.get_list("date")
    if not values:
        return 0.0
    try:
        server_time = email.utils.parsedate_to_datetime(values[-1]).timestamp()
    except (TypeError, ValueError):
        return 0.0
    return server_time - local_now


def _retry_after(response: httpx.Response, now: float) -> float:
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
