"""Portal tables: customers, licenses, add-on purchases, instances seen, signing keys.

The code says `license`; the stored names keep the spelling the first migration gave them
(`licences`, `licence_instances`, `licence_id`), so existing databases need no migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from codesuggest.common.db import UtcDateTime

KEY_PUBLISHED = "published"
KEY_SIGNING = "signing"
KEY_RETIRED = "retired"


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    licenses: Mapped[list[License]] = relationship(back_populates="customer")


class License(Base):
    """A license; the key itself is shown once at creation and only its SHA-256 is kept."""

    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    cloud: Mapped[bool] = mapped_column(Boolean)
    trial: Mapped[bool] = mapped_column(Boolean)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    grace_period_days: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    customer: Mapped[Customer] = relationship(back_populates="licenses")
    addons: Mapped[list[AddonPurchase]] = relationship(
        back_populates="license", cascade="all, delete-orphan", order_by="AddonPurchase.id"
    )
    instances: Mapped[list[LicenseInstance]] = relationship(
        back_populates="license", cascade="all, delete-orphan", order_by="LicenseInstance.id"
    )


class AddonPurchase(Base):
    __tablename__ = "addon_purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column("licence_id", ForeignKey("licences.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    seats: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    license: Mapped[License] = relationship(back_populates="addons")


class LicenseInstance(Base):
    """An instance that has synced with a license (what `x-gitlab-*` headers said)."""

    __tablename__ = "licence_instances"
    __table_args__ = (UniqueConstraint("licence_id", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    license_id: Mapped[int] = mapped_column("licence_id", ForeignKey("licences.id"))
    instance_id: Mapped[str] = mapped_column(String(128))
    host_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())

    license: Mapped[License] = relationship(back_populates="instances")


class SigningKey(Base):
    """An RSA key: private half sealed (Fernet), public half as a JWK for the JWKS.

    `tokens_valid_until` is the latest `exp` of any token it signed, so `trim` knows when no
    token signed by it can still be alive. At most one key is in state `signing`.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (
        Index(
            "uq_signing_keys_one_signing",
            "state",
            unique=True,
            sqlite_where=text("state = 'signing'"),
            postgresql_where=text("state = 'signing'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    signing_since: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    tokens_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
