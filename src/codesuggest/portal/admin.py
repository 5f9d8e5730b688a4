"""Admin operations over the portal database, one transaction each.

The CLI, the tests and `codesuggest up` all go through `PortalAdmin`, so they behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from codesuggest.common.sealing import Sealer
from codesuggest.portal import keyring, licensing
from codesuggest.portal.database import open_database
from codesuggest.portal.licensing import CreatedLicense
from codesuggest.portal.models import AddonPurchase, License
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import Clock, PrivateKey, SystemClock


class PortalAdmin:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        sealer: Sealer,
        clock: Clock | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.sessions = sessions
        self.sealer = sealer
        self.clock = clock or SystemClock()
        self.engine = engine

    @classmethod
    def open(cls, settings: PortalSettings, clock: Clock | None = None) -> PortalAdmin:
        """Open (and migrate) the database named by `settings`."""
        engine, sessions = open_database(settings.effective_database_url)
        return cls(sessions, Sealer(settings.resolve_secret()), clock, engine)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    # Licenses and add-ons

    def create_license(
        self,
        *,
        customer: str = licensing.DEFAULT_CUSTOMER,
        cloud: bool = True,
        trial: bool = False,
        days: int = 365,
        grace_days: int = 14,
    ) -> CreatedLicense:
        with self.sessions.begin() as session:
            return licensing.create_license(
                session,
                self.now(),
                customer=customer,
                cloud=cloud,
                trial=trial,
                days=days,
                grace_days=grace_days,
            )

    def list_licenses(self) -> list[License]:
        with self.sessions.begin() as session:
            return licensing.list_licenses(session)

    def revoke_license(self, license_id: int) -> License:
        with self.sessions.begin() as session:
            return licensing.revoke_license(session, license_id, self.now())

    def rebind_license(self, license_id: int, instance_id: str | None = None) -> License:
        with self.sessions.begin() as session:
            return licensing.rebind_license(session, license_id, instance_id, self.now())

    def add_addon(
        self, license_id: int, *, name: str = "code_suggestions", seats: int = 10, days: int = 365
    ) -> AddonPurchase:
        with self.sessions.begin() as session:
            return licensing.add_addon(
                session, license_id, self.now(), name=name, seats=seats, days=days
            )

    def remove_addon(self, license_id: int, name: str = "code_suggestions") -> int:
        with self.sessions.begin() as session:
            return licensing.remove_addon(session, license_id, name)

    # Signing keys

    def ensure_signing_key(self) -> str:
        """First start: make sure one key signs. Safe when several processes start at once."""
        try:
            with self.sessions.begin() as session:
                return keyring.ensure_signing_key(session, self.sealer, self.now()).kid
        except IntegrityError:
            # Another process took the single signing slot first; use its key.
            with self.sessions.begin() as session:
                return keyring.ensure_signing_key(session, self.sealer, self.now()).kid

    def list_keys(self) -> list[keyring.KeyStatus]:
        with self.sessions.begin() as session:
            return keyring.list_keys(session, self.now())

    def create_key(self, key: PrivateKey | None = None) -> str:
        with self.sessions.begin() as session:
            return keyring.create_key(session, self.sealer, self.now(), key).kid

    def rotate_keys(self) -> tuple[str, str | None]:
        with self.sessions.begin() as session:
            new, old = keyring.rotate(session, self.now())
            return new.kid, old.kid if old else None

    def trim_keys(self, *, force: bool = False) -> keyring.TrimResult:
        with self.sessions.begin() as session:
            return keyring.trim(session, self.now(), force=force)
