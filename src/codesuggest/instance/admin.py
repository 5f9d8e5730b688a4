"""Admin operations as plain functions, shared by the REST API, the admin pages, the CLI, the
tests and `codesuggest up`. Each takes an open session (the caller's transaction) and raises
`AdminError` (or its `NotFound`/`Conflict` subclasses) for a request it cannot do.

Taking access away (block, delete, revoking a PAT with an AI scope) records a revocation in the
same transaction (revocations.py), which the instance then pushes to the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from codesuggest.common.sealing import hash_secret
from codesuggest.instance import revocations
from codesuggest.instance.identity import AI_SCOPES, SCOPES, new_pat
from codesuggest.instance.models import (
    ApplicationSettings,
    Group,
    GroupMember,
    PersonalAccessToken,
    User,
)
from codesuggest.instance.settings import parse_contexts
from codesuggest.instance.store import application_settings


class AdminError(ValueError):
    """A request that cannot be done; the message says why."""


class NotFound(AdminError):
    """The user or token named does not exist."""


class Conflict(AdminError):
    """The request clashes with what exists (a username taken)."""


T = TypeVar("T")
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with what GitLab's pagination headers need."""

    items: list[T]
    total: int
    page: int
    per_page: int


def _page(session: Session, query: Select[T], page: int, per_page: int) -> Page[T]:
    if page < 1:
        raise AdminError("page must be a positive integer")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise AdminError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(list(items), total or 0, page, per_page)


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


USERNAME_MAX = 255


def create_user(session: Session, username: str, now: datetime, admin: bool = False) -> User:
    username = username.strip()
    if (
        not username
        or len(username) > USERNAME_MAX
        or any(c.isspace() or c == "/" for c in username)
    ):
        raise AdminError("username must be 1-255 characters without spaces or '/'")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, admin=admin, blocked=False, created_at=now)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def users_page(
    session: Session,
    page: int = 1,
    per_page: int = 20,
    *,
    username: str | None = None,
    blocked: bool | None = None,
) -> Page[User]:
    """Users by id; `username` matches exactly (as GitLab's `?username=`)."""
    query = select(User).order_by(User.id)
    if username is not None:
        query = query.where(func.lower(User.username) == username.lower())
    if blocked is not None:
        query = query.where(User.blocked.is_(blocked))
    return _page(session, query, page, per_page)


def block_user(session: Session, user_id: int, now: datetime) -> bool:
    """Block the user and void their user tokens. False when they were blocked already."""
    user = get_user(session, user_id)
    if user.blocked:
        return False
    user.blocked = True
    revocations.record(session, user.id, "blocked", now)
    return True


def unblock_user(session: Session, user_id: int) -> bool:
    """False when the user was not blocked. Their old user tokens stay void; a new
    `direct_access` gets a fresh one."""
    user = get_user(session, user_id)
    if not user.blocked:
        return False
    user.blocked = False
    return True


def set_blocked(session: Session, username: str, now: datetime, blocked: bool = True) -> User:
    user = _user(session, username)
    if blocked:
        block_user(session, user.id, now)
    else:
        unblock_user(session, user.id)
    return user


def delete_user(session: Session, user_id: int, now: datetime) -> None:
    """Delete the user with their PATs, seats and memberships, and void their user tokens."""
    user = get_user(session, user_id)
    revocations.record(session, user.id, "deleted", now)
    session.delete(user)
    session.flush()


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str
    """The only time the PAT is ever available in clear."""
    expires_at: datetime | None


def create_token(
    session: Session,
    username: str,
    now: datetime,
    scopes: Sequence[str] = ("api",),
    days: int | None = 30,
    name: str = "codesuggest",
) -> NewToken:
    if days is not None and days <= 0:
        raise AdminError("--days must be positive")
    expires_at = now + timedelta(days=days) if days is not None else None
    return _create_token(session, _user(session, username), now, scopes, expires_at, name)


NAME_MAX = 255


def create_token_for(
    session: Session,
    user_id: int,
    now: datetime,
    name: str,
    scopes: Sequence[str],
    expires_on: date | None = None,
) -> NewToken:
    """GitLab's `POST /users/:id/personal_access_tokens`: the token expires at the start (UTC)
    of `expires_on`, which must be in the future; no date: one year from now."""
    user = get_user(session, user_id)
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise AdminError("name must be 1-255 characters")
    if expires_on is None:
        expires_at = now + timedelta(days=365)
    else:
        expires_at = datetime.combine(expires_on, time(), tzinfo=now.tzinfo)
        if expires_at <= now:
            raise AdminError("expires_at must be a date in the future")
    return _create_token(session, user, now, scopes, expires_at, name)


def _create_token(
    session: Session,
    user: User,
    now: datetime,
    scopes: Sequence[str],
    expires_at: datetime | None,
    name: str,
) -> NewToken:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise AdminError(f"unknown scopes {unknown}: choose from {', '.join(SCOPES)}")
    token = new_pat()
    row = PersonalAccessToken(
        user_id=user.id,
        name=name,
        token_digest=hash_secret(token),
        scopes=" ".join(dict.fromkeys(scopes)),
        expires_at=expires_at,
        revoked=False,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return NewToken(id=row.id, token=token, expires_at=expires_at)


def get_token(session: Session, token_id: int) -> PersonalAccessToken:
    row = session.get(PersonalAccessToken, token_id)
    if row is None:
        raise NotFound(f"personal access token {token_id} does not exist")
    return row


def token_by_digest(session: Session, digest: str) -> PersonalAccessToken:
    row = session.scalar(
        select(PersonalAccessToken).where(PersonalAccessToken.token_digest == digest)
    )
    if row is None:
        raise NotFound("personal access token does not exist")
    return row


def token_is_active(row: PersonalAccessToken, now: datetime) -> bool:
    return not row.revoked and (row.expires_at is None or row.expires_at > now)


def revoke_token(session: Session, token_id: int, now: datetime) -> PersonalAccessToken:
    """Revoke the PAT. User tokens are not bound to the PAT that obtained them, so when it could
    obtain one (an AI scope), every user token of its owner is voided; their other PATs get a
    fresh one with the next `direct_access`."""
    row = get_token(session, token_id)
    if row.revoked:
        return row
    could_mint = token_is_active(row, now) and bool(set(row.scopes.split()) & AI_SCOPES)
    row.revoked = True
    if could_mint:
        revocations.record(session, row.user_id, "pat_revoked", now)
    return row


def tokens_page(
    session: Session,
    now: datetime,
    page: int = 1,
    per_page: int = 20,
    *,
    user_id: int | None = None,
    revoked: bool | None = None,
    state: str | None = None,
) -> Page[PersonalAccessToken]:
    """GitLab's `GET /personal_access_tokens` filters: `user_id`, `revoked`, `state`
    (`active` | `inactive`)."""
    query = select(PersonalAccessToken).order_by(PersonalAccessToken.id)
    if user_id is not None:
        query = query.where(PersonalAccessToken.user_id == user_id)
    if revoked is not None:
        query = query.where(PersonalAccessToken.revoked.is_(revoked))
    if state is not None:
        live = (PersonalAccessToken.revoked.is_(False)) & (
            PersonalAccessToken.expires_at.is_(None) | (PersonalAccessToken.expires_at > now)
        )
        if state == "active":
            query = query.where(live)
        elif state == "inactive":
            query = query.where(~live)
        else:
            raise AdminError("state must be 'active' or 'inactive'")
    return _page(session, query, page, per_page)


def list_tokens(session: Session, username: str) -> list[PersonalAccessToken]:
    user = _user(session, username)
    return list(
        session.scalars(
            select(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user.id)
            .order_by(PersonalAccessToken.id)
        )
    )


def create_group(session: Session, path: str) -> Group:
    if "/" in path or not path:
        raise AdminError("a top-level group path is one non-empty segment without '/'")
    if session.scalar(select(Group).where(Group.path == path)) is not None:
        raise AdminError(f"group {path!r} already exists")
    group = Group(path=path)
    session.add(group)
    session.flush()
    return group


def add_member(session: Session, path: str, username: str) -> None:
    group = session.scalar(select(Group).where(Group.path == path))
    if group is None:
        raise AdminError(f"group {path!r} does not exist")
    user = _user(session, username)
    exists = session.scalar(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user.id)
    )
    if exists is None:
        session.add(GroupMember(group_id=group.id, user_id=user.id))


SETTABLE = {
    "realm": str,
    "host_name": str,
    "version": str,
    "gateway_url": str,
    "edge_url": str,
    "disabled_direct_code_suggestions": bool,
    "model_provider": str,
    "model_name": str,
    "code_suggestions_contexts": str,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_setting(key: str, value: object) -> object:
    """Validate one application setting; strings from the CLI are converted."""
    kind = SETTABLE.get(key)
    if kind is None:
        raise AdminError(f"unknown setting {key!r}: choose from {', '.join(SETTABLE)}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise AdminError(f"{key} must be true or false")
    if key == "code_suggestions_contexts":
        if value is None:
            return ""
        if not isinstance(value, str):
            raise AdminError(f"{key} must be a string")
        try:
            return parse_contexts(value)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
    if value is None or value == "":
        if key in {"edge_url", "model_provider", "model_name"}:
            return None
        raise AdminError(f"{key} cannot be empty")
    if not isinstance(value, str):
        raise AdminError(f"{key} must be a string")
    if key == "realm" and value not in {"saas", "self-managed"}:
        raise AdminError("realm must be 'saas' or 'self-managed'")
    if key == "host_name":
        return host_name(value)
    if key.endswith("_url"):
        return http_url(key, value)
    if len(value) > 255 or not value.isprintable() or not value.isascii():
        raise AdminError(f"{key} must be at most 255 printable ASCII characters")
    return value


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def host_name(value: str) -> str:
    """A DNS host name as it goes into `X-Gitlab-Host-Name`: an international name is stored in
    its ASCII (punycode) form; anything else that is not a host name is refused."""
    try:
        ascii_name = value.strip().encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise AdminError(f"host_name {value!r} is not a valid host name") from None
    labels = ascii_name.rstrip(".").split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise AdminError(f"host_name {value!r} is not a valid host name")
    return ascii_name


def http_url(key: str, value: str) -> str:
    """An http(s) URL with a host, without credentials, query or fragment (trailing `/` cut)."""
    value = value.strip()
    if not value.isascii() or not value.isprintable() or " " in value or len(value) > 1024:
        raise AdminError(f"{key} must be a URL of printable ASCII characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise AdminError(f"{key} {value!r} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise AdminError(f"{key} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.query or parts.fragment:
        raise AdminError(f"{key} must not carry credentials, a query or a fragment")
    return value.rstrip("/")


def set_setting(session: Session, key: str, value: object) -> ApplicationSettings:
    row = application_settings(session)
    setattr(row, key, parse_setting(key, value))
    return row
