"""Customers, licences and add-on purchases: what the admin CLI manages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from codesuggest.common.sealing import hash_secret, new_secret
from codesuggest.portal.models import AddonPurchase, Customer, Licence, LicenceInstance
from codesuggest.tokens.claims import ADDON_SCOPES

LICENCE_KEY_PREFIX = "cslk_"
DEFAULT_CUSTOMER = "default"


class LicensingError(Exception):
    """An admin request the portal refuses (unknown licence, bad add-on name, ...)."""


@dataclass(frozen=True)
class CreatedLicence:
    id: int
    key: str
    """The licence key in clear: shown once, never stored."""
    customer: str
    cloud: bool
    trial: bool
    starts_at: datetime
    expires_at: datetime
    grace_period_days: int


def hash_licence_key(key: str) -> str:
    return hash_secret(key)


def _customer(session: Session, name: str, now: datetime) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.name == name))
    if customer is None:
        customer = Customer(name=name, created_at=now)
        session.add(customer)
        session.flush()
    return customer


def create_licence(
    session: Session,
    now: datetime,
    *,
    customer: str = DEFAULT_CUSTOMER,
    cloud: bool = True,
    trial: bool = False,
    days: int = 365,
    grace_days: int = 14,
) -> CreatedLicence:
    if days < 1:
        raise LicensingError("a licence must last at least 1 day")
    if grace_days < 0:
        raise LicensingError("the grace period cannot be negative")
    if not customer.strip() or len(customer) > 255:
        raise LicensingError("the customer name must be 1 to 255 characters")
    key = new_secret(LICENCE_KEY_PREFIX, nbytes=48)
    licence = Licence(
        customer=_customer(session, customer, now),
        key_hash=hash_licence_key(key),
        cloud=cloud,
        trial=trial,
        starts_at=now,
        expires_at=now + timedelta(days=days),
        grace_period_days=grace_days,
        created_at=now,
    )
    session.add(licence)
    session.flush()
    return CreatedLicence(
        id=licence.id,
        key=key,
        customer=customer,
        cloud=cloud,
        trial=trial,
        starts_at=licence.starts_at,
        expires_at=licence.expires_at,
        grace_period_days=grace_days,
    )


def find_by_key(session: Session, key: str) -> Licence | None:
    return session.scalar(select(Licence).where(Licence.key_hash == hash_licence_key(key)))


def get_licence(session: Session, licence_id: int) -> Licence:
    licence = session.get(Licence, licence_id)
    if licence is None:
        raise LicensingError(f"no licence with id {licence_id}")
    return licence


def list_licences(session: Session) -> list[Licence]:
    query = (
        select(Licence)
        .options(
            selectinload(Licence.customer),
            selectinload(Licence.addons),
            selectinload(Licence.instances),
        )
        .order_by(Licence.id)
    )
    return list(session.scalars(query))


def revoke_licence(session: Session, licence_id: int, now: datetime) -> Licence:
    licence = get_licence(session, licence_id)
    if licence.revoked_at is None:
        licence.revoked_at = now
    session.flush()
    return licence


def bound_instance(session: Session, licence_id: int) -> str | None:
    """The instance id a licence is bound to: the one of its first sync (None before it)."""
    return session.scalar(
        select(LicenceInstance.instance_id)
        .where(LicenceInstance.licence_id == licence_id)
        .order_by(LicenceInstance.first_seen_at, LicenceInstance.id)
        .limit(1)
    )


def rebind_licence(
    session: Session, licence_id: int, instance_id: str | None, now: datetime
) -> Licence:
    """Forget the instances a licence has synced from, so it binds to `instance_id` (or, when
    None, to the instance of its next sync). An explicit admin action: a licence moved to a
    new installation."""
    licence = get_licence(session, licence_id)
    for row in list(licence.instances):
        session.delete(row)
    session.flush()
    if instance_id is not None:
        session.add(
            LicenceInstance(
                licence_id=licence.id, instance_id=instance_id, first_seen_at=now, last_seen_at=now
            )
        )
    session.flush()
    return licence


def add_addon(
    session: Session,
    licence_id: int,
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
        licence=get_licence(session, licence_id),
        name=name,
        seats=seats,
        starts_at=now,
        ends_at=now + timedelta(days=days),
        created_at=now,
    )
    session.add(purchase)
    session.flush()
    return purchase


def remove_addon(session: Session, licence_id: int, name: str = "code_suggestions") -> int:
    """Delete the licence's purchases of add-on `name`; returns how many were removed."""
    licence = get_licence(session, licence_id)
    purchases = [a for a in licence.addons if a.name == name]
    if not purchases:
        raise LicensingError(f"licence {licence_id} has no {name!r} add-on")
    for purchase in purchases:
        licence.addons.remove(purchase)
    session.flush()
    return len(purchases)
