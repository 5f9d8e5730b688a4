"""cloudConnectorAccess: check a license and issue the instance token (docs/contracts.md 2 and 3).

Every check runs before anything is written; a refused call writes nothing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from limits import RateLimitItemPerHour
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from codesuggest.common.logs import get_logger
from codesuggest.common.sealing import Sealer
from codesuggest.portal import keyring
from codesuggest.portal.licensing import bound_instance, find_by_key
from codesuggest.portal.models import AddonPurchase, License, LicenseInstance
from codesuggest.tokens import REALM_SELF_MANAGED, Clock, Signer
from codesuggest.tokens.claims import ADDON_SCOPES

log = get_logger("codesuggest.portal.access")

MAX_LICENSE_KEY = 512
MAX_VERSION = 64
MAX_HOST_NAME = 255
_INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


class AccessDenied(Exception):
    """The caller gets a GraphQL error with this message and `extensions.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = {"code": code}


# (code, message) for every refusal; the messages are part of the contract (docs/portal.md).
MISSING_INSTANCE_ID = ("MISSING_INSTANCE_ID", "Missing required header: x-gitlab-instance-id")
INVALID_INSTANCE_ID = ("INVALID_INSTANCE_ID", "Invalid x-gitlab-instance-id header")
INVALID_HOST_NAME = ("INVALID_HEADER", "Invalid x-gitlab-host-name header")
INVALID_VERSION = ("INVALID_VERSION", "Invalid GitLab version")
LICENSE_MALFORMED = ("LICENSE_MALFORMED", "License key is malformed")
LICENSE_NOT_FOUND = ("LICENSE_NOT_FOUND", "License key not found")
LICENSE_REVOKED = ("LICENSE_REVOKED", "License has been revoked")
LICENSE_NOT_CLOUD = ("LICENSE_NOT_CLOUD", "License is not a cloud license")
LICENSE_TRIAL = ("LICENSE_TRIAL", "Trial licenses cannot use Cloud Connector")
LICENSE_NOT_STARTED = ("LICENSE_NOT_STARTED", "License is not active yet")
LICENSE_EXPIRED = ("LICENSE_EXPIRED", "License has expired")
LICENSE_BOUND = (
    "LICENSE_BOUND",
    "License is in use by another instance (a portal admin can move it: licenses rebind)",
)
RATE_LIMITED = ("RATE_LIMITED", "Too many requests for this license; try again later")


def _deny(reason: tuple[str, str]) -> AccessDenied:
    return AccessDenied(*reason)


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_at: datetime
    kid: str
    jti: str


@dataclass(frozen=True)
class AvailableService:
    name: str
    service_start_time: datetime
    service_end_time: datetime
    bundled_with: list[str]
    unit_primitives: list[str]
    seats: int


@dataclass(frozen=True)
class AccessGrant:
    license_id: int
    service_token: IssuedToken | None
    available_services: list[AvailableService]

    def catalog(self, audience: str) -> dict[str, Any]:
        """The services this instance may use, with the backend that serves them."""
        return {
            "version": 1,
            "services": [
                {
                    "name": s.name,
                    "backend": audience,
                    "unit_primitives": s.unit_primitives,
                    "bundled_with": s.bundled_with,
                    "seats": s.seats,
                    "service_start_time": s.service_start_time.isoformat(),
                    "service_end_time": s.service_end_time.isoformat(),
                }
                for s in self.available_services
            ],
        }


@dataclass(frozen=True)
class CallerHeaders:
    instance_id: str
    host_name: str | None
    version: str | None

    @classmethod
    def parse(cls, headers: Mapping[str, str], gitlab_version: str) -> CallerHeaders:
        instance_id = headers.get("x-gitlab-instance-id", "").strip()
        if not instance_id:
            raise _deny(MISSING_INSTANCE_ID)
        if not _INSTANCE_ID.fullmatch(instance_id):
            raise _deny(INVALID_INSTANCE_ID)
        host_name = headers.get("x-gitlab-host-name") or None
        if host_name is not None and (
            len(host_name) > MAX_HOST_NAME or not _PRINTABLE.fullmatch(host_name)
        ):
            raise _deny(INVALID_HOST_NAME)
        version = headers.get("x-gitlab-version") or gitlab_version or None
        for candidate in (gitlab_version, version):
            if candidate and (len(candidate) > MAX_VERSION or not _PRINTABLE.fullmatch(candidate)):
                raise _deny(INVALID_VERSION)
        return cls(instance_id=instance_id, host_name=host_name, version=version)


def _check_license(license: License, now: datetime) -> datetime:
    """Raise unless the license may use Cloud Connector; return its hard end (after grace)."""
    if license.revoked_at is not None:
        raise _deny(LICENSE_REVOKED)
    if not license.cloud:
        raise _deny(LICENSE_NOT_CLOUD)
    if license.trial:
        raise _deny(LICENSE_TRIAL)
    if now < license.starts_at:
        raise _deny(LICENSE_NOT_STARTED)
    hard_end = license.expires_at + timedelta(days=license.grace_period_days)
    if now >= hard_end:
        raise _deny(LICENSE_EXPIRED)
    return hard_end


def _services(addons: list[AddonPurchase], now: datetime) -> list[AvailableService]:
    """One entry per add-on name that is active now or starts later."""
    by_name: dict[str, list[AddonPurchase]] = {}
    for addon in addons:
        if addon.ends_at > now:
            by_name.setdefault(addon.name, []).append(addon)
    services = []
    for name, purchases in sorted(by_name.items()):
        active = [p for p in purchases if p.starts_at <= now]
        services.append(
            AvailableService(
                name=name,
                service_start_time=min(p.starts_at for p in purchases),
                service_end_time=max(p.ends_at for p in purchases),
                bundled_with=[name],
                unit_primitives=list(ADDON_SCOPES.get(name, [])),
                seats=max((p.seats for p in active), default=0),
            )
        )
    return services


class AccessService:
    """Runs one cloudConnectorAccess call (blocking: call it from a worker thread)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sealer: Sealer,
        clock: Clock,
        *,
        issuer: str,
        audience: str,
        lifetime: timedelta,
        per_hour: int = 60,
    ) -> None:
        self.sessions = sessions
        # Per license, over a moving hour, in this process (the `limits` library).
        self.limit = RateLimitItemPerHour(per_hour)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.sealer = sealer
        self.clock = clock
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._signers: dict[str, Signer] = {}
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def check(
        self, license_key: str, gitlab_version: str, headers: Mapping[str, str]
    ) -> AccessGrant:
        caller = CallerHeaders.parse(headers, gitlab_version)
        if not 0 < len(license_key) <= MAX_LICENSE_KEY or not _PRINTABLE.fullmatch(license_key):
            raise _deny(LICENSE_MALFORMED)
        try:
            grant = self._grant(license_key, caller)
        except IntegrityError:
            # Two syncs from a new instance raced to record it; the retry finds the row.
            grant = self._grant(license_key, caller)
        log.info(
            "cloud connector access granted",
            license_id=grant.license_id,
            instance_id=caller.instance_id,
            issued=grant.service_token is not None,
            kid=grant.service_token.kid if grant.service_token else None,
            jti=grant.service_token.jti if grant.service_token else None,
        )
        return grant

    def _grant(self, license_key: str, caller: CallerHeaders) -> AccessGrant:
        now = self.now()
        with self.sessions.begin() as session:
            license = find_by_key(session, license_key)
            if license is None:
                raise _deny(LICENSE_NOT_FOUND)
            if not self.limiter.hit(self.limit, str(license.id)):
                raise _deny(RATE_LIMITED)
            hard_end = _check_license(license, now)
            bound = bound_instance(session, license.id)
            if bound is not None and bound != caller.instance_id:
                raise _deny(LICENSE_BOUND)
            addons = list(license.addons)
            services = _services(addons, now)
            _record_instance(session, license.id, caller, now)
            scopes: list[str] = []
            entitled_until = now
            for addon in addons:
                if addon.starts_at <= now < addon.ends_at:
                    for scope in ADDON_SCOPES.get(addon.name, []):
                        if scope not in scopes:
                            scopes.append(scope)
                    entitled_until = max(entitled_until, addon.ends_at)
            token = None
            if scopes:
                token = self._mint(
                    session, caller.instance_id, scopes, min(hard_end, entitled_until)
                )
            return AccessGrant(
                license_id=license.id, service_token=token, available_services=services
            )

    def _signer(self, session: Session) -> Signer:
        row = keyring.signing_key(session)
        if row is None:
            raise RuntimeError("the portal has no signing key")
        with self._lock:
            signer = self._signers.get(row.kid)
            if signer is None:
                signer = Signer(keyring.private_key(row, self.sealer), self.issuer, self.clock)
                self._signers = {row.kid: signer}
            return signer

    def _mint(
        self, session: Session, instance_id: str, scopes: list[str], cap: datetime
    ) -> IssuedToken:
        signer = self._signer(session)
        token, claims = signer.mint(
            subject=instance_id,
            audience=[self.audience],
            lifetime=self.lifetime.total_seconds(),
            expires_at=int(cap.timestamp()),
            extra={
                "gitlab_realm": REALM_SELF_MANAGED,
                "gitlab_instance_id": instance_id,
                "scopes": scopes,
            },
        )
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        keyring.record_token(session, signer.key.kid, expires_at)
        return IssuedToken(
            token=token, expires_at=expires_at, kid=signer.key.kid, jti=claims["jti"]
        )


def _record_instance(
    session: Session, license_id: int, caller: CallerHeaders, now: datetime
) -> None:
    row = session.scalar(
        select(LicenseInstance).where(
            LicenseInstance.license_id == license_id,
            LicenseInstance.instance_id == caller.instance_id,
        )
    )
    if row is None:
        row = LicenseInstance(
            license_id=license_id, instance_id=caller.instance_id, first_seen_at=now
        )
        session.add(row)
    row.host_name = caller.host_name
    row.version = caller.version
    row.last_seen_at = now
    session.flush()
