"""Customers, licenses and add-on purchases: what the admin CLI manages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from codesuggest.common.sealing import hash_secret, new_secret
from codesuggest.portal.models import AddonPurchase, Customer, License, LicenseInstance
from codesuggest.tokens.claims import ADDON_SCOPES

LICENSE_KEY_PREFIX = "cslk_"
DEFAULT_CUSTOMER = "default"


class LicensingError(Exception):
    """An admin request the portal refuses (unknown license, bad add-on name, ...)."""


@dataclass(frozen=True)
class CreatedLicense:
    id: int
    key: str
    """The license key in clear: shown once, never stored."""
    customer: str
    cloud: bool
    trial: bool
    starts_at: datetime
    expires_at: datetime
    grace_period_days: int


def hash_license_key(key: str) -> str:
    return hash_secret(key)


def _customer(session: Session, name: str, now: datetime) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.name == name))
    if customer is None:
        customer = Customer(name=name, created_at=now)
        session.add(customer)
        session.flush()
    return customer


def create_license(
    session: Session,
    now: datetime,
    *,
    customer: str = DEFAULT_CUSTOMER,
    cloud: bool = True,
    trial: bool = False,
    days: int = 365,
    grace_days: int = 14,
) -> CreatedLicense:
    if days < 1:
        raise LicensingError("a license must last at least 1 day")
    if grace_days < 0:
        raise LicensingError("the grace period cannot be negative")
    if not customer.strip() or len(customer) > 255:
        raise LicensingError("the customer name must be 1 to 255 characters")
    key = new_secret(LICENSE_KEY_PREFIX, nbytes=48)
    license = License(
        customer=_customer(session, customer, now),
        key_hash=hash_license_key(key),
        cloud=cloud,
        trial=trial,
        starts_at=now,
        expires_at=now + timedelta(days=days),
        grace_period_days=grace_days,
        created_at=now,
    )
    session.add(license)
    session.flush()
    return CreatedLicense(
        id=license.id,
        key=key,
        customer=customer,
        cloud=cloud,
        trial=trial,
        starts_at=license.starts_at,
        expires_at=license.expires_at,
        grace_period_days=grace_days,
    )


def find_by_key(session: Session, key: str) -> License | None:
    return session.scalar(select(License).where(License.key_hash == hash_license_key(key)))


def get_license(session: Session, license_id: int) -> License:
    license = session.get(License, license_id)
    if license is None:
        raise LicensingError(f"no license with id {license_id}")
    return license


def list_licenses(session: Session) -> list[License]:
    query = (
        select(License)
        .options(
            selectinload(License.customer),
            selectinload(License.addons),
            selectinload(License.instances),
        )
        .order_by(License.id)
    )
    return list(session.scalars(query))


def revoke_license(session: Session, license_id: int, now: datetime) -> License:
    license = get_license(session, license_id)
    if license.revoked_at is None:
        license.revoked_at = now
    session.flush()
    return license


def bound_instance(session: Session, license_id: int) -> str | None:
    """The instance id a license is bound to: the one of its first sync (None before it)."""
    return session.scalar(
        select(LicenseInstance.instance_id)
        .where(LicenseInstance.license_id == license_id)
        .order_by(LicenseInstance.first_seen_at, LicenseInstance.id)
        .limit(1)
    )


def rebind_license(
    session: Session, license_id: int, instance_id: str | None, now: datetime
) -> License:
    """Forget the instances a license has synced from, so it binds to `instance_id` (or, when
    None, to the instance of its next sync). An explicit admin action: a license moved to a
    new installation."""
    license = get_license(session, license_id)
    for row in list(license.instances):
        session.delete(row)
    session.flush()
    if instance_id is not None:
        session.add(
            LicenseInstance(
                license_id=license.id, instance_id=instance_id, first_seen_at=now, last_seen_at=now
            )
        )
    session.flush()
    return license


def add_addon(
    session: Session,
    license_id: int,
    now: datetime,
    *,
    name: str = "code_suggestions",
    seats: int = 10,
    days: int = 365,
) -> AddonPurchase:
    if name not in ADDON_SCOPES:
        raise LicensingError(f"unknown add-on {name!r}; known: {', '.join(sorted(ADDON_SCOPES))}")
    if seats < 1 or days < 1:
        raise LicensingError("an add-on needs at least 1 seat and 1 day")
    purchase = AddonPurchase(
        license=get_license(session, license_id),
        name=name,
        seats=seats,
        starts_at=now,
        ends_at=now + timedelta(days=days),
        created_at=now,
    )
    session.add(purchase)
    session.flush()
    return purchase


def remove_addon(session: Session, license_id: int, name: str = "code_suggestions") -> int:
    """Delete the license's purchases of add-on `name`; returns how many were removed."""
    license = get_license(session, license_id)
    purchases = [a for a in license.addons if a.name == name]
    if not purchases:
        raise LicensingError(f"license {license_id} has no {name!r} add-on")
    for purchase in purchases:
        license.addons.remove(purchase)
    session.flush()
    return len(purchases)
