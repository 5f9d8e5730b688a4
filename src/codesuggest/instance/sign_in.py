"""Passwords and browser sessions for the admin pages.

Passwords are hashed with argon2id (`argon2-cffi`). After `max_failures` wrong passwords in a
row a user's sign-in is locked for `lockout`; the counter lives on the user row, so every
instance process sees it. A session is a random cookie value stored only as its SHA-256, with
the CSRF token its forms carry.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from codesuggest.common.sealing import hash_secret
from codesuggest.instance.admin import AdminError
from codesuggest.instance.models import AdminSession, User

MIN_PASSWORD = 12
_hasher = PasswordHasher()


@functools.cache
def _unusable() -> str:
    """Checked against when the user is unknown, so the answer takes as long either way; made
    on first sign-in rather than at import (hashing takes a noticeable part of a second)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def new_password() -> str:
    """A first password for `codesuggest up` (printed once, like the PATs)."""
    return secrets.token_urlsafe(15)


def set_password(session: Session, username: str, password: str) -> User:
    """Set (or replace) a user's password; this also clears a lockout."""
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"a password needs at least {MIN_PASSWORD} characters")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AdminError(f"user {username!r} does not exist")
    user.password_hash = _hasher.hash(password)
    user.failed_sign_ins = 0
    user.locked_until = None
    return user


Outcome = Literal["ok", "wrong", "locked", "blocked"]


@dataclass(frozen=True)
class SignIn:
    outcome: Outcome
    user_id: int | None = None
    admin: bool = False
    locked_until: datetime | None = None


def check_password(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    *,
    max_failures: int,
    lockout: timedelta,
) -> SignIn:
    """The outcome of one sign-in attempt; records failures (commit the session either way)."""
    unusable = _unusable()  # before the lookup: the first attempt of either kind pays for it
    user = session.scalar(select(User).where(User.username == username))
    if user is not None and user.locked_until is not None and user.locked_until > now:
        return SignIn("locked", locked_until=user.locked_until)
    if user is None or user.password_hash is None:
        _verify(unusable, password)
        return SignIn("wrong")
    if not _verify(user.password_hash, password):
        user.failed_sign_ins += 1
        if user.failed_sign_ins >= max_failures:
            user.failed_sign_ins = 0
            user.locked_until = now + lockout
            return SignIn("locked", locked_until=user.locked_until)
        return SignIn("wrong")
    user.failed_sign_ins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    if user.blocked:
        return SignIn("blocked", user_id=user.id)
    return SignIn("ok", user_id=user.id, admin=user.admin)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class NewSession:
    cookie: str
    """The only time the session's cookie value is available in clear."""
    csrf_token: str
    expires_at: datetime


def open_session(session: Session, user_id: int, now: datetime, lifetime: timedelta) -> NewSession:
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    cookie = secrets.token_urlsafe(32)
    row = AdminSession(
        token_digest=hash_secret(cookie),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    return NewSession(cookie=cookie, csrf_token=row.csrf_token, expires_at=row.expires_at)


@dataclass(frozen=True)
class SessionUser:
    user_id: int
    username: str
    admin: bool
    blocked: bool
    csrf_token: str


def session_user(session: Session, cookie: str | None, now: datetime) -> SessionUser | None:
    """Whose live session the cookie is, or None."""
    if not cookie:
        return None
    row = session.execute(
        select(AdminSession, User)
        .join(User, User.id == AdminSession.user_id)
        .where(AdminSession.token_digest == hash_secret(cookie))
    ).first()
    if row is None or row[0].expires_at <= now:
        return None
    live, user = row
    return SessionUser(user.id, user.username, user.admin, user.blocked, live.csrf_token)


def end_session(session: Session, cookie: str | None) -> None:
    if cookie:
        session.execute(
            delete(AdminSession).where(AdminSession.token_digest == hash_secret(cookie))
        )
