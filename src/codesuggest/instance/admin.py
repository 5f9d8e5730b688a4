"""Admin operations as plain functions, shared by the CLI, the tests and `codesuggest up`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from codesuggest.common.sealing import hash_secret
from codesuggest.instance.identity import SCOPES, new_pat
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


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AdminError(f"user {username!r} does not exist")
    return user


def create_user(session: Session, username: str, now: datetime, admin: bool = False) -> User:
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AdminError(f"user {username!r} already exists")
    user = User(username=username, admin=admin, blocked=False, created_at=now)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def set_blocked(session: Session, username: str, blocked: bool = True) -> User:
    user = _user(session, username)
    user.blocked = blocked
    return user


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
    scopes: list[str] | tuple[str, ...] = ("api",),
    days: int | None = 30,
    name: str = "codesuggest",
) -> NewToken:
    user = _user(session, username)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise AdminError(f"unknown scopes {unknown}: choose from {', '.join(SCOPES)}")
    if days is not None and days <= 0:
        raise AdminError("--days must be positive")
    token = new_pat()
    expires_at = now + timedelta(days=days) if days is not None else None
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


def revoke_token(session: Session, token_id: int) -> None:
    row = session.get(PersonalAccessToken, token_id)
    if row is None:
        raise AdminError(f"personal access token {token_id} does not exist")
    row.revoked = True


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
