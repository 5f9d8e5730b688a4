"""Token sync (self-managed): keep a live portal-signed instance token in the database.

The job asks the portal only when there is no live token, the newest has under 2 days left, or
an admin forces it. A new token is stored sealed; expired ones are deleted; `serviceToken: null`
(no add-on any more) deletes them all. The same answer's catalog brings the seats the license
allows for the `code_suggestions` add-on, which bound the instance's seats (seats.py). A failed
call changes nothing stored and is retried with back-off by `SyncScheduler`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from codesuggest.common.logs import get_logger
from codesuggest.common.sealing import Sealer
from codesuggest.common.tasks import cancel
from codesuggest.instance import seats
from codesuggest.instance.models import ServiceAccessToken, utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings
from codesuggest.tokens import Clock

log = get_logger("codesuggest.instance.sync")

REFRESH_WHEN_LEFT = timedelta(days=2)
QUERY = (
    "query cloudConnectorAccess($licenseKey: String!, $gitlabVersion: String!) "
    "{ cloudConnectorAccess(licenseKey: $licenseKey, gitlabVersion: $gitlabVersion) "
    "{ serviceToken { token expiresAt } availableServices { name serviceStartTime bundledWith } "
    "catalog } }"
)

Outcome = Literal["skipped", "stored", "cleared", "failed"]


@dataclass(frozen=True)
class SyncResult:
    outcome: Outcome
    reason: str
    expires_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


def _as_datetime(now: datetime | float) -> datetime:
    return now if isinstance(now, datetime) else utc(now)


def _newest_live(session: Session, now: datetime) -> ServiceAccessToken | None:
    return session.scalar(
        select(ServiceAccessToken)
        .where(ServiceAccessToken.expires_at > now)
        .order_by(ServiceAccessToken.expires_at.desc(), ServiceAccessToken.id.desc())
        .limit(1)
    )


def newest_live_token(
    session: Session, now: datetime | float, sealer: Sealer | None = None
) -> str | None:
    """The unexpired instance token that lives longest, in clear; None when there is none.
    The sealer defaults to the one `open_store` attaches to every session."""
    row = _newest_live(session, _as_datetime(now))
    if row is None:
        return None
    return (sealer or session.info["sealer"]).open(row.token_sealed)


class SyncFailed(Exception):
    """The portal could not give an answer we can act on; nothing stored changes."""


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


@dataclass(frozen=True)
class PortalAnswer:
    service_token: dict[str, Any] | None
    """None: the license has no add-on any more."""
    licensed_seats: int | None
    """Seats of the `code_suggestions` add-on (0 without one); None: no catalog to read."""


def _licensed_seats(catalog: Any) -> int | None:
    if not isinstance(catalog, dict) or not isinstance(catalog.get("services"), list):
        return None
    for service in catalog["services"]:
        if isinstance(service, dict) and service.get("name") == seats.ADD_ON:
            count = service.get("seats")
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                return count
            raise SyncFailed("catalog seats of code_suggestions is not a count")
    return 0


async def _ask_portal(
    settings: InstanceSettings, http: httpx.AsyncClient, headers: dict[str, str], version: str
) -> PortalAnswer:
    """The `serviceToken` object and the licensed seats, or raise SyncFailed with a log-safe
    reason."""
    portal = settings.portal_url.rstrip("/")
    try:
        response = await http.post(
            f"{portal}/graphql",
            json={
                "query": QUERY,
                "variables": {"licenseKey": settings.license_key, "gitlabVersion": version},
            },
            headers=headers,
            timeout=settings.portal_timeout,
        )
    except httpx.TimeoutException as exc:
        raise SyncFailed(f"portal at {portal} timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise SyncFailed(f"portal at {portal} unreachable ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise SyncFailed(f"portal at {portal} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise SyncFailed("portal answered with something that is not JSON") from exc
    if not isinstance(body, dict):
        raise SyncFailed("portal answer is not a JSON object")
    if body.get("errors"):
        messages = "; ".join(
            str(e.get("message", e)) for e in body["errors"] if isinstance(e, dict)
        )
        reason = _scrub(messages or "GraphQL error", settings.license_key)
        raise SyncFailed(f"portal refused: {reason}")
    access = (body.get("data") or {}).get("cloudConnectorAccess")
    if not isinstance(access, dict):
        raise SyncFailed("portal answer has no cloudConnectorAccess")
    token = access.get("serviceToken")
    if token is not None and not isinstance(token, dict):
        raise SyncFailed("serviceToken is not an object")
    return PortalAnswer(token, _licensed_seats(access.get("catalog")))


def _parse_token(service_token: dict[str, Any], now: datetime) -> tuple[str, datetime]:
    token, expires = service_token.get("token"), service_token.get("expiresAt")
    if not isinstance(token, str) or token.count(".") != 2:
        raise SyncFailed("serviceToken.token is not a JWT")
    try:
        expires_at = datetime.fromisoformat(str(expires))
    except ValueError as exc:
        raise SyncFailed("serviceToken.expiresAt is not ISO-8601") from exc
    if expires_at.tzinfo is None:
        raise SyncFailed("serviceToken.expiresAt has no time zone")
    if expires_at <= now:
        raise SyncFailed("portal returned a token that has already expired")
    return token, expires_at


async def sync_once(
    store: Store,
    settings: InstanceSettings,
    http: httpx.AsyncClient,
    clock: Clock,
    force: bool = False,
) -> SyncResult:
    """One sync: decide, call the portal if needed, store the outcome. Never raises for portal
    failures: they come back as `outcome="failed"` with the reason (already logged)."""
    now = utc(clock.now())

    def read_state() -> tuple[datetime | None, dict[str, str], str]:
        with store.session() as session:
            row = _newest_live(session, now)
            app = application_settings(session)
            headers = {
                "x-gitlab-instance-id": app.instance_uuid,
                "x-gitlab-host-name": app.host_name,
                "x-gitlab-realm": app.realm,
                "x-gitlab-version": app.version,
            }
            return (row.expires_at if row else None), headers, app.version

    newest_expiry, headers, version = await anyio.to_thread.run_sync(read_state)
    if not force and newest_expiry is not None and newest_expiry - now >= REFRESH_WHEN_LEFT:
        return SyncResult("skipped", "a live token has more than 2 days left", newest_expiry)
    if not settings.license_key:
        result = SyncResult(
            "failed", "no license key configured (CODESUGGEST_INSTANCE_LICENSE_KEY)"
        )
        log.warning("token sync failed", reason=result.reason)
        return result
    try:
        answer = await _ask_portal(settings, http, headers, version)
        parsed = None if answer.service_token is None else _parse_token(answer.service_token, now)
    except SyncFailed as exc:
        log.warning("token sync failed", reason=str(exc))
        return SyncResult("failed", str(exc))

    def write() -> SyncResult:
        with store.session() as session:
            if answer.licensed_seats is not None:
                seats.set_licensed(session, answer.licensed_seats, now)
            if parsed is None:
                session.execute(delete(ServiceAccessToken))
                return SyncResult("cleared", "the license has no code suggestions add-on")
            token, expires_at = parsed
            session.add(
                ServiceAccessToken(
                    token_sealed=store.sealer.seal(token), expires_at=expires_at, created_at=now
                )
            )
            session.execute(delete(ServiceAccessToken).where(ServiceAccessToken.expires_at <= now))
            return SyncResult("stored", "new instance token stored", expires_at)

    result = await anyio.to_thread.run_sync(write)
    log.info("token sync done", outcome=result.outcome, reason=result.reason)
    return result


class SyncScheduler:
    """Runs `run()` every `interval` seconds; after a failure retries sooner, doubling the wait
    from `retry_initial` up to `interval`."""

    def __init__(
        self,
        run: Callable[[], Awaitable[SyncResult]],
        interval: float,
        retry_initial: float,
    ) -> None:
        self.run = run
        self.interval = interval
        self.retry_initial = retry_initial
        self.last: SyncResult | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="instance-token-sync")

    async def _loop(self) -> None:
        delay = self.retry_initial
        while True:
            try:
                self.last = await self.run()
            except Exception as exc:  # noqa: BLE001 - a bug or DB outage must not kill the job
                log.error("token sync crashed", error=f"{type(exc).__name__}: {exc}")
                self.last = SyncResult("failed", f"internal error ({type(exc).__name__})")
            if self.last.ok:
                delay = self.retry_initial
                await asyncio.sleep(self.interval)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.interval)

    async def aclose(self) -> None:
        await cancel(self._task)
        self._task = None
