"""The SaaS instance's signing keys (`cloud_connector_keys`, private halves sealed at rest).

Rotation without breaking live tokens:
`create` adds a standby key (published in the JWKS, not signing yet) -> wait until verifiers
have refetched the JWKS (its max-age, 1 day) -> `rotate` makes the standby key sign -> wait
until tokens signed by the old key have expired (1 h) -> `trim` removes the retired key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from codesuggest.common.sealing import Sealer
from codesuggest.instance.models import CloudConnectorKey
from codesuggest.tokens import PrivateKey, PublicKey

MAX_KEYS = 2


class KeyAdminError(ValueError):
    """A key operation that cannot be done; the message says why."""


def list_keys(session: Session) -> list[CloudConnectorKey]:
    return list(session.scalars(select(CloudConnectorKey).order_by(CloudConnectorKey.id)))


def create_key(session: Session, sealer: Sealer, now: datetime) -> CloudConnectorKey:
    """Add a key: the signing key when there is none, else a standby key for `rotate`."""
    keys = list_keys(session)
    if len(keys) >= MAX_KEYS:
        raise KeyAdminError(f"there are already {MAX_KEYS} keys: run `trim` after a rotation first")
    private = PrivateKey.generate()
    row = CloudConnectorKey(
        kid=private.kid,
        secret_key_sealed=sealer.seal(private.to_pem()),
        current=not any(k.current for k in keys),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def ensure_key(session: Session, sealer: Sealer, now: datetime) -> None:
    """First start of a SaaS instance: make sure a signing key exists."""
    if not any(k.current for k in list_keys(session)):
        create_key(session, sealer, now)


def rotate_keys(session: Session) -> CloudConnectorKey:
    """Make the newest non-current key the signing key; the old one stays published."""
    keys = list_keys(session)
    standby = [k for k in keys if not k.current]
    if not standby:
        raise KeyAdminError("there is no standby key to rotate to: run `create` first")
    new = standby[-1]
    for key in keys:
        key.current = key is new
    return new


def trim_keys(session: Session) -> int:
    """Delete every key that does not sign. Returns how many were deleted."""
    doomed = [k for k in list_keys(session) if not k.current]
    for key in doomed:
        session.delete(key)
    return len(doomed)


class KeyRing:
    """Reads keys from the database (so a CLI rotation in another process takes effect) and
    keeps the parsed keys in memory by kid (parsing a PEM costs far more than the query)."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._parsed: dict[str, PrivateKey] = {}

    def _load(self, row: CloudConnectorKey) -> PrivateKey:
        key = self._parsed.get(row.kid)
        if key is None:
            key = PrivateKey.from_pem(self.sealer.open(row.secret_key_sealed))
            self._parsed[row.kid] = key
        return key

    def signing_key(self, session: Session) -> PrivateKey:
        row = session.scalar(select(CloudConnectorKey).where(CloudConnectorKey.current.is_(True)))
        if row is None:
            raise KeyAdminError("no signing key: run `codesuggest instance keys create`")
        return self._load(row)

    def public_keys(self, session: Session) -> list[PublicKey]:
        return [self._load(row).public for row in list_keys(session)]
