"""The portal's signing keys: create (publish), rotate (switch signing), trim (drop retired).

States: `published` (in the JWKS, not yet signing), `signing` (exactly one), `retired` (no
longer signing; stays in the JWKS while a token it signed may still be accepted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from codesuggest.common.sealing import Sealer
from codesuggest.portal.models import KEY_PUBLISHED, KEY_RETIRED, KEY_SIGNING, SigningKey
from codesuggest.tokens import PrivateKey, PublicKey

# Verifiers accept a token for a little while past `exp` (the gateway's default leeway is
# 30 s); keep retired keys published for this long after their last token expires.
VERIFIER_LEEWAY = timedelta(minutes=5)


class KeyringError(Exception):
    """An operator asked for something the keyring refuses to do; the message says why."""


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    state: str
    created_at: datetime
    signing_since: datetime | None
    retired_at: datetime | None
    tokens_valid_until: datetime | None
    published: bool
    removable_after: datetime | None
    """For a retired key: when no token signed by it can be accepted any more."""


def _removable_after(row: SigningKey) -> datetime | None:
    if row.state != KEY_RETIRED:
        return None
    if row.tokens_valid_until is None:
        return row.retired_at
    return row.tokens_valid_until + VERIFIER_LEEWAY


def _is_published(row: SigningKey, now: datetime) -> bool:
    after = _removable_after(row)
    return after is None or now < after


def status(row: SigningKey, now: datetime) -> KeyStatus:
    return KeyStatus(
        kid=row.kid,
        state=row.state,
        created_at=row.created_at,
        signing_since=row.signing_since,
        retired_at=row.retired_at,
        tokens_valid_until=row.tokens_valid_until,
        published=_is_published(row, now),
        removable_after=_removable_after(row),
    )


def list_keys(session: Session, now: datetime) -> list[KeyStatus]:
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))
    return [status(row, now) for row in rows]


def create_key(
    session: Session, sealer: Sealer, now: datetime, key: PrivateKey | None = None
) -> SigningKey:
    """Add a key in state `published` (or import `key`, e.g. one supplied by the operator)."""
    key = key or PrivateKey.generate()
    if session.get(SigningKey, key.kid) is not None:
        raise KeyringError(f"key {key.kid} is already in the keyring")
    row = SigningKey(
        kid=key.kid,
        sealed_pem=sealer.seal(key.to_pem()),
        public_jwk=json.dumps(key.public.jwk()),
        state=KEY_PUBLISHED,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def signing_key(session: Session) -> SigningKey | None:
    return session.scalar(select(SigningKey).where(SigningKey.state == KEY_SIGNING))


def _newest_published(session: Session) -> SigningKey | None:
    return session.scalar(
        select(SigningKey)
        .where(SigningKey.state == KEY_PUBLISHED)
        .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
        .limit(1)
    )


def ensure_signing_key(session: Session, sealer: Sealer, now: datetime) -> SigningKey:
    """The key that signs; on first start, promote a published key or create one."""
    row = signing_key(session)
    if row is not None:
        return row
    row = _newest_published(session) or create_key(session, sealer, now)
    row.state = KEY_SIGNING
    row.signing_since = now
    session.flush()
    return row


def rotate(session: Session, now: datetime) -> tuple[SigningKey, SigningKey | None]:
    """Sign with the newest published key from now on; the old signing key is retired.

    Returns (new signing key, retired key or None)."""
    new = _newest_published(session)
    if new is None:
        raise KeyringError(
            "no published key to rotate to: run `keys create` first, then rotate once "
            "verifiers have refreshed their key sets"
        )
    old = signing_key(session)
    if old is not None:
        old.state = KEY_RETIRED
        old.retired_at = now
        session.flush()  # free the one-signing-key slot before taking it
    new.state = KEY_SIGNING
    new.signing_since = now
    session.flush()
    return new, old


@dataclass(frozen=True)
class TrimResult:
    removed: list[str]
    still_live: list[KeyStatus]


def trim(session: Session, now: datetime, *, force: bool = False) -> TrimResult:
    """Delete retired keys no live token can depend on (all retired keys with `force`).

    Refuses when there are retired keys but every one may still verify live tokens."""
    retired = list(session.scalars(select(SigningKey).where(SigningKey.state == KEY_RETIRED)))
    removable = [r for r in retired if force or not _is_published(r, now)]
    live = [status(r, now) for r in retired if r not in removable]
    if live and not removable:
        details = "; ".join(
            f"{k.kid} until {k.removable_after.isoformat()}" for k in live if k.removable_after
        )
        raise KeyringError(
            f"refusing to trim: tokens signed by retired keys may still be live ({details}); "
            "wait until then or use --force (those tokens will then fail verification)"
        )
    for row in removable:
        session.delete(row)
    session.flush()
    return TrimResult(removed=[r.kid for r in removable], still_live=live)


def published_keys(session: Session, now: datetime) -> list[SigningKey]:
    """Every key that may still have live tokens, or will sign soon: the JWKS contents."""
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))
    return [row for row in rows if _is_published(row, now)]


def public_key(row: SigningKey) -> PublicKey:
    return PublicKey.from_jwk(json.loads(row.public_jwk))


def private_key(row: SigningKey, sealer: Sealer) -> PrivateKey:
    return PrivateKey.from_pem(sealer.open(row.sealed_pem))


def record_token(session: Session, kid: str, expires_at: datetime) -> None:
    """Remember that `kid` signed a token valid until `expires_at` (monotonic maximum)."""
    session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .where(
            (SigningKey.tokens_valid_until.is_(None)) | (SigningKey.tokens_valid_until < expires_at)
        )
        .values(tokens_valid_until=expires_at)
    )
