"""The `code_suggestions` add-on: purchases with a seat count, and seat assignments.

Self-managed: one purchase for the whole instance, bounded by the seats the license allows
(`licensed_quantity`, brought by the portal sync: `set_licensed`). SaaS: a purchase belongs to a
top-level group and only members of that group can hold one of its seats.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from codesuggest.instance import revocations
from codesuggest.instance.models import (
    AddOnPurchase,
    Group,
    GroupMember,
    SeatAssignment,
    User,
)

ADD_ON = "code_suggestions"


class SeatError(ValueError):
    """An admin request about seats that cannot be done; the message says why."""


def _purchase(session: Session, group_id: int | None) -> AddOnPurchase | None:
    same_group = (
        AddOnPurchase.group_id.is_(None) if group_id is None else AddOnPurchase.group_id == group_id
    )
    return session.scalar(select(AddOnPurchase).where(AddOnPurchase.add_on == ADD_ON, same_group))


def _group(session: Session, path: str | None) -> Group | None:
    if path is None:
        return None
    group = session.scalar(select(Group).where(Group.path == path))
    if group is None:
        raise SeatNotFound(f"group {path!r} does not exist")
    return group


class SeatNotFound(SeatError):
    """The user, group or purchase named does not exist."""


class NoSeatsAvailable(SeatError):
    """Every seat of the purchase is assigned."""


class NotAMember(SeatError):
    """SaaS: the user is not a member of the group that bought the seats."""


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise SeatNotFound(f"user {username!r} does not exist")
    return user


def _user_by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise SeatNotFound(f"user {user_id} does not exist")
    return user


def assigned_count(session: Session, purchase_id: int) -> int:
    query = select(func.count()).where(SeatAssignment.purchase_id == purchase_id)
    return session.scalar(query) or 0


def _beyond_license(licensed: int, wanted: str) -> SeatError:
    return SeatError(
        f"the license allows {licensed} code_suggestions seats: {wanted}. Buy more seats "
        "for the license on the portal, then run `codesuggest instance sync --force`"
    )


def set_licensed(session: Session, licensed: int, now: datetime) -> AddOnPurchase:
    """The portal sync's seat count for the instance-wide purchase (created with that many
    seats when there is none, as the add-on purchase arrives with the license; cut down to it
    when larger). A count below the seats assigned takes no seat away, but gives no new one."""
    row = _purchase(session, None)
    if row is None:
        row = AddOnPurchase(add_on=ADD_ON, quantity=licensed, group_id=None, created_at=now)
        session.add(row)
    row.licensed_quantity = licensed
    row.quantity = min(row.quantity, licensed)
    session.flush()
    return row


def purchase(
    session: Session, count: int, now: datetime, group: str | None = None
) -> AddOnPurchase:
    """Create the add-on purchase or change its seat count (never below the seats in use,
    never above what the license allows)."""
    if count < 0:
        raise SeatError("the seat count cannot be negative")
    group_row = _group(session, group)
    group_id = group_row.id if group_row else None
    row = _purchase(session, group_id)
    licensed = row.licensed_quantity if row is not None else None
    if licensed is not None and count > licensed:
        raise _beyond_license(licensed, f"cannot purchase {count}")
    if row is None:
        row = AddOnPurchase(add_on=ADD_ON, quantity=count, group_id=group_id, created_at=now)
        session.add(row)
        session.flush()
        return row
    used = assigned_count(session, row.id)
    if count < used:
        raise SeatError(f"{used} seats are assigned: unassign some before reducing to {count}")
    row.quantity = count
    return row


def assign(session: Session, username: str, now: datetime, group: str | None = None) -> bool:
    """Give the user a seat of the instance's (or the group's) purchase; False when they hold
    one already."""
    return _assign(session, _user(session, username), now, group)


def _assign(session: Session, user: User, now: datetime, group: str | None) -> bool:
    group_row = _group(session, group)
    row = _purchase(session, group_row.id if group_row else None)
    if row is None:
        where = f"group {group!r}" if group else "this instance"
        raise SeatError(f"no code_suggestions add-on has been purchased for {where}")
    return _take_seat(session, row, user, now)


def _take_seat(session: Session, row: AddOnPurchase, user: User, now: datetime) -> bool:
    if row.group_id is not None and not _is_member(session, row.group_id, user.id):
        group = session.get(Group, row.group_id)
        path = group.path if group else row.group_id
        raise NotAMember(f"user {user.username!r} is not a member of group {path!r}")
    exists = session.scalar(
        select(SeatAssignment).where(
            SeatAssignment.purchase_id == row.id, SeatAssignment.user_id == user.id
        )
    )
    if exists is not None:
        return False
    # Lock the purchase row (PostgreSQL) so two concurrent assigns cannot both take the last seat.
    session.execute(select(AddOnPurchase.id).where(AddOnPurchase.id == row.id).with_for_update())
    used = assigned_count(session, row.id)
    if row.licensed_quantity is not None and used >= row.licensed_quantity:
        raise _beyond_license(row.licensed_quantity, f"{used} are assigned; unassign a user first")
    if used >= row.quantity:
        raise NoSeatsAvailable(
            f"all {row.quantity} code_suggestions seats are assigned: "
            "purchase more seats or unassign a user first"
        )
    session.add(SeatAssignment(purchase_id=row.id, user_id=user.id, created_at=now))
    return True


def unassign(session: Session, username: str, now: datetime, group: str | None = None) -> bool:
    """True when a seat was freed (the user's user tokens are then voided)."""
    group_row = _group(session, group)
    row = _purchase(session, group_row.id if group_row else None)
    user = _user(session, username)
    return row is not None and _free_seat(session, row, user, now)


def _free_seat(session: Session, row: AddOnPurchase, user: User, now: datetime) -> bool:
    seat = session.scalar(
        select(SeatAssignment).where(
            SeatAssignment.purchase_id == row.id, SeatAssignment.user_id == user.id
        )
    )
    if seat is None:
        return False
    session.delete(seat)
    revocations.record(session, user.id, "unassigned", now)
    return True


def purchases(session: Session) -> list[AddOnPurchase]:
    """Every code_suggestions purchase, by id."""
    query = select(AddOnPurchase).where(AddOnPurchase.add_on == ADD_ON).order_by(AddOnPurchase.id)
    return list(session.scalars(query))


def get_purchase(session: Session, purchase_id: int) -> AddOnPurchase:
    row = session.get(AddOnPurchase, purchase_id)
    if row is None or row.add_on != ADD_ON:
        raise SeatNotFound(f"add-on purchase {purchase_id} does not exist")
    return row


def assigned_users(session: Session, purchase_id: int) -> list[User]:
    query = (
        select(User)
        .join(SeatAssignment, SeatAssignment.user_id == User.id)
        .where(SeatAssignment.purchase_id == purchase_id)
        .order_by(User.id)
    )
    return list(session.scalars(query))


def assign_to_purchase(session: Session, purchase_id: int, user_id: int, now: datetime) -> bool:
    """Give the user a seat of this purchase; False when they hold one already."""
    row = get_purchase(session, purchase_id)
    return _take_seat(session, row, _user_by_id(session, user_id), now)


def unassign_from_purchase(session: Session, purchase_id: int, user_id: int, now: datetime) -> bool:
    """Take the user's seat of this purchase (their user tokens are voided); False when they
    held none."""
    row = get_purchase(session, purchase_id)
    return _free_seat(session, row, _user_by_id(session, user_id), now)


def list_seats(session: Session) -> list[dict[str, object]]:
    """One entry per purchase: group, seat count, assigned usernames."""
    result: list[dict[str, object]] = []
    for row in session.scalars(select(AddOnPurchase).where(AddOnPurchase.add_on == ADD_ON)):
        group = session.get(Group, row.group_id) if row.group_id else None
        users = session.scalars(
            select(User.username)
            .join(SeatAssignment, SeatAssignment.user_id == User.id)
            .where(SeatAssignment.purchase_id == row.id)
            .order_by(User.username)
        ).all()
        result.append(
            {
                "group": group.path if group else None,
                "seats": row.quantity,
                "licensed": row.licensed_quantity,
                "assigned": list(users),
            }
        )
    return result


def _is_member(session: Session, group_id: int, user_id: int) -> bool:
    return (
        session.scalar(
            select(GroupMember.id).where(
                GroupMember.group_id == group_id, GroupMember.user_id == user_id
            )
        )
        is not None
    )


def seat_group_ids(session: Session, user_id: int) -> list[int]:
    """SaaS: the top-level groups whose purchase gives the user a seat (and they still belong
    to); GitLab calls them the user's Duo Pro namespaces."""
    query = (
        select(AddOnPurchase.group_id)
        .join(SeatAssignment, SeatAssignment.purchase_id == AddOnPurchase.id)
        .where(AddOnPurchase.add_on == ADD_ON, SeatAssignment.user_id == user_id)
        .where(AddOnPurchase.group_id.is_not(None))
    )
    return sorted(
        g for g in session.scalars(query) if g is not None and _is_member(session, g, user_id)
    )


def has_seat(session: Session, user_id: int, realm: str) -> bool:
    """Self-managed: a seat on the instance's purchase. SaaS: a seat on a group's purchase of a
    group the user is still a member of."""
    query = (
        select(AddOnPurchase.group_id)
        .join(SeatAssignment, SeatAssignment.purchase_id == AddOnPurchase.id)
        .where(AddOnPurchase.add_on == ADD_ON, SeatAssignment.user_id == user_id)
    )
    for group_id in session.scalars(query):
        if realm == "saas":
            if group_id is not None and _is_member(session, group_id, user_id):
                return True
        elif group_id is None:
            return True
    return False
