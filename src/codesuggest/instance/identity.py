"""Users, personal access tokens and the global user id."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from codesuggest.common.sealing import hash_secret, new_secret
from codesuggest.instance import errors
from codesuggest.instance.models import PersonalAccessToken, User

PAT_PREFIX = "glpat-"
SCOPES = ("api", "read_api", "ai_features")
AI_SCOPES = frozenset({"api", "ai_features"})
LAST_USED_GRANULARITY = timedelta(minutes=10)


def global_user_id(secret: str, instance_uuid: str, user_id: int) -> str:
    """Stable and opaque per (instance, user): base64url(HMAC-SHA256(secret, uuid:user id))."""
    digest = hmac.new(secret.encode(), f"{instance_uuid}:{user_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def new_pat() -> str:
    return new_secret(PAT_PREFIX, 20)


def pat_from_headers(private_token: str | None, authorization: str | None) -> str | None:
    """`PRIVATE-TOKEN: <pat>` or `Authorization: Bearer <pat>`."""
    if private_token:
        return private_token.strip()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class Authenticated:
    user_id: int
    token_id: int
    username: str
    admin: bool
    scopes: frozenset[str]


def authenticate(session: Session, token: str | None, now: datetime) -> Authenticated:
    """The PAT's user, or 401 for a missing/unknown/expired/revoked token; 403 if blocked."""
    if not token:
        raise errors.unauthorized()
    row = session.execute(
        select(PersonalAccessToken, User)
        .join(User, User.id == PersonalAccessToken.user_id)
        .where(PersonalAccessToken.token_digest == hash_secret(token))
    ).first()
    if row is None:
        raise errors.unauthorized()
    pat, user = row
    if pat.revoked or (pat.expires_at is not None and pat.expires_at <= now):
        raise errors.unauthorized()
    if user.blocked:
        raise errors.forbidden("Your account has been blocked.")
    if pat.last_used_at is None or now - pat.last_used_at >= LAST_USED_GRANULARITY:
        pat.last_used_at = now
    return Authenticated(
        user_id=user.id,
        token_id=pat.id,
        username=user.username,
        admin=user.admin,
        scopes=frozenset(pat.scopes.split()),
    )


def require_admin(auth: Authenticated) -> None:
    if not auth.admin:
        raise errors.forbidden("You must be an administrator")


def require_ai_scope(auth: Authenticated) -> None:
    if not auth.scopes & AI_SCOPES:
        raise errors.insufficient_scope()
