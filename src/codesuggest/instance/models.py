"""The instance's tables (SQLAlchemy 2). Secrets are only ever stored hashed or sealed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from codesuggest.common.db import UtcDateTime
from codesuggest.common.usage import FIELD_LIMITS


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Base(DeclarativeBase):
    pass


class ApplicationSettings(Base):
    """One row: who this instance is and how it reaches the gateway."""

    __tablename__ = "application_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    realm: Mapped[str] = mapped_column(String(32), nullable=False)
    host_name: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    gateway_url: Mapped[str] = mapped_column(String(1024), nullable=False)
    edge_url: Mapped[str | None] = mapped_column(String(1024))
    disabled_direct_code_suggestions: Mapped[bool] = mapped_column(Boolean, default=False)
    model_provider: Mapped[str | None] = mapped_column(String(255))
    model_name: Mapped[str | None] = mapped_column(String(255))
    code_suggestions_contexts: Mapped[str] = mapped_column(
        String(255), nullable=False, default="open_tabs imports"
    )
    """Space-separated context kinds IDEs may send with completions (`open_tabs`, `imports`)."""


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """argon2id; NULL: this user cannot sign in to the admin pages."""
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AdminSession(Base):
    """A signed-in browser on the admin pages: the cookie's value is only stored hashed."""

    __tablename__ = "admin_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)


class PersonalAccessToken(Base):
    __tablename__ = "personal_access_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[str] = mapped_column(String(255), nullable=False)
    """Space-separated scope names."""
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Group(Base):
    """A top-level group (SaaS: add-on purchases belong to one)."""

    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class AddOnPurchase(Base):
    __tablename__ = "add_on_purchases"
    __table_args__ = (UniqueConstraint("add_on", "group_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    add_on: Mapped[str] = mapped_column(String(64), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    """SaaS: the top-level group that bought it; self-managed: NULL (the whole instance)."""
    licensed_quantity: Mapped[int | None] = mapped_column(Integer)
    """Self-managed: the seats the license allows, brought by the portal sync; NULL until the
    first sync (and on SaaS). Purchases and assignments never go beyond it."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class SeatAssignment(Base):
    __tablename__ = "seat_assignments"
    __table_args__ = (UniqueConstraint("purchase_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(
        ForeignKey("add_on_purchases.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class ServiceAccessToken(Base):
    """Instance tokens from the portal (self-managed), sealed at rest."""

    __tablename__ = "service_access_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sealed: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class CloudConnectorKey(Base):
    """The SaaS instance's signing keys; the private PEM is sealed at rest."""

    __tablename__ = "cloud_connector_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    secret_key_sealed: Mapped[str] = mapped_column(Text, nullable=False)
    current: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    """The key that signs; the others are published only (standby before a rotation, or
    retired after one, until `trim`)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


def _text(name: str) -> Column[str]:
    return Column(name, String(FIELD_LIMITS[name]))


usage_events = Table(
    "usage_events",
    Base.metadata,
    Column("event_id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("occurred_at", DateTime, nullable=False),  # naive UTC
    Column("day", String(10), nullable=False, index=True),
    _text("realm"),
    _text("instance_id"),
    Column("global_user_id", String(FIELD_LIMITS["global_user_id"]), index=True),
    _text("host_name"),
    _text("language"),
    _text("model_provider"),
    _text("model_name"),
    Column("path", String(16)),
    _text("status"),
    Column("latency_ms", Float),
    Column("suggestion_chars", Integer),
    Column("count", Integer, nullable=False, default=1),
    _text("client_name"),
    _text("client_version"),
    _text("request_id"),
    Column("received_at", DateTime, nullable=False),
    Column("source", String(16)),  # "ide" for IDE telemetry (instance.ide_telemetry)
    Column("tracking_id", String(64), index=True),
)
"""Usage events: the gateway's (`common.usage.UsageEvent`, through the usage sink) and what IDEs
report (`ide_telemetry`). Core, not ORM: rows are inserted and summed in bulk."""


class RevocationOutbox(Base):
    """ "Tokens of user U issued before T are void": one row per push to the gateway, written in
    the transaction that takes the access away and kept until delivered (and an hour after, so
    `direct_access` knows which cached user tokens are void)."""

    __tablename__ = "revocation_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    push_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    """No foreign key: a deleted user's revocation must still be pushed."""
    issued_before: Mapped[int] = mapped_column(Integer, nullable=False)
    """Epoch seconds: user tokens with `iat` below this are void."""
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
