"""Seats of the code_suggestions add-on, as GitLab's GraphQL API manages them:
`addOnPurchases(namespaceId:)`, `userAddOnAssignmentCreate` and `userAddOnAssignmentRemove`.

Administrators only (GitLab: instance admins on self-managed, group owners on SaaS; this
instance has no group roles, so its administrators manage every group's seats). A mutation
needs a PAT with `api`. A request for something that does not exist, or that the viewer may not
touch, gets GitLab's "does not exist or you don't have permission" error; a seat that cannot be
taken comes back in the payload's `errors` (`NO_SEATS_AVAILABLE`, `INVALID_USER_MEMBERSHIP`,
`NO_ASSIGNMENT_FOUND`). Removing a seat voids the user's live user tokens within a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

import strawberry
from anyio import to_thread
from sqlalchemy.orm import Session
from strawberry.types.scalar import ScalarDefinition

from codesuggest.instance import seats
from codesuggest.instance.graphql.context import GraphQLContext
from codesuggest.instance.models import AddOnPurchase, Group, User, utc

NOT_ALLOWED = (
    "The resource that you are attempting to access does not exist or you don't have "
    "permission to perform this action"
)


class SeatRequestRefused(Exception):
    """A seat request refused on purpose; its message reaches the client (schema.REFUSALS)."""


PURCHASE_GID = "gid://gitlab/GitlabSubscriptions::AddOnPurchase/"
USER_GID = "gid://gitlab/User/"
GROUP_GID = "gid://gitlab/Group/"


def _parse_gid(value: object, prefix: str) -> int:
    text = str(value)
    if not text.startswith(prefix) or not text[len(prefix) :].isdigit():
        raise SeatRequestRefused(f"{text!r} is not a valid ID of the form {prefix}<id>")
    return int(text[len(prefix) :])


PurchaseID = NewType("PurchaseID", str)
UserID = NewType("UserID", str)
NamespaceID = NewType("NamespaceID", str)

SCALARS: dict[object, ScalarDefinition] = {
    PurchaseID: strawberry.scalar(
        name="GitlabSubscriptionsAddOnPurchaseID",
        serialize=str,
        parse_value=str,
        description="A global id: gid://gitlab/GitlabSubscriptions::AddOnPurchase/<id>",
    ),
    UserID: strawberry.scalar(
        name="UserID", serialize=str, parse_value=str, description="gid://gitlab/User/<id>"
    ),
    NamespaceID: strawberry.scalar(
        name="NamespaceID", serialize=str, parse_value=str, description="gid://gitlab/Group/<id>"
    ),
}
"""GitLab's id scalars (the schema's `scalar_map`): clients declare their variables with them."""


@strawberry.type(name="AddOnPurchase")
class AddOnPurchaseType:
    id: PurchaseID
    name: str
    purchased_quantity: int
    assigned_quantity: int


@strawberry.type(name="AddOnUser")
class AddOnUser:
    id: UserID
    username: str
    name: str


@dataclass(frozen=True)
class _Result:
    purchase: AddOnPurchaseType | None
    user: AddOnUser | None
    errors: list[str]


@strawberry.type
class UserAddOnAssignmentCreatePayload:
    add_on_purchase: AddOnPurchaseType | None
    user: AddOnUser | None
    errors: list[str]
    client_mutation_id: str | None


@strawberry.type
class UserAddOnAssignmentRemovePayload:
    add_on_purchase: AddOnPurchaseType | None
    user: AddOnUser | None
    errors: list[str]
    client_mutation_id: str | None


@strawberry.input
class UserAddOnAssignmentCreateInput:
    add_on_purchase_id: PurchaseID
    user_id: UserID
    client_mutation_id: str | None = None


@strawberry.input
class UserAddOnAssignmentRemoveInput:
    add_on_purchase_id: PurchaseID
    user_id: UserID
    client_mutation_id: str | None = None


def _purchase(session: Session, row: AddOnPurchase) -> AddOnPurchaseType:
    return AddOnPurchaseType(
        id=PurchaseID(f"{PURCHASE_GID}{row.id}"),
        name="CODE_SUGGESTIONS",
        purchased_quantity=row.quantity,
        assigned_quantity=seats.assigned_count(session, row.id),
    )


def _user(row: User) -> AddOnUser:
    return AddOnUser(id=UserID(f"{USER_GID}{row.id}"), username=row.username, name=row.username)


def _admin(context: GraphQLContext, write: bool) -> None:
    viewer = context.viewer
    if viewer is None or not viewer.admin:
        raise SeatRequestRefused(NOT_ALLOWED)
    if write and "api" not in viewer.scopes:
        raise SeatRequestRefused("The mutation needs a token with the api scope")


def _change(context: GraphQLContext, purchase_gid: object, user_gid: object, take: bool) -> _Result:
    purchase_id = _parse_gid(purchase_gid, PURCHASE_GID)
    user_id = _parse_gid(user_gid, USER_GID)
    now = utc(context.instance.clock.now())
    with context.instance.store.session() as session:
        try:
            row = seats.get_purchase(session, purchase_id)
        except seats.SeatNotFound as exc:
            raise SeatRequestRefused(NOT_ALLOWED) from exc
        user = session.get(User, user_id)
        if user is None:
            raise SeatRequestRefused(NOT_ALLOWED)
        errors: list[str] = []
        try:
            if take:
                seats.assign_to_purchase(session, purchase_id, user_id, now)
            elif not seats.unassign_from_purchase(session, purchase_id, user_id, now):
                errors.append("NO_ASSIGNMENT_FOUND")
        except seats.NoSeatsAvailable:
            errors.append("NO_SEATS_AVAILABLE")
        except seats.NotAMember:
            errors.append("INVALID_USER_MEMBERSHIP")
        session.flush()
        return _Result(_purchase(session, row), _user(user), errors)


@strawberry.type
class SeatsQuery:
    @strawberry.field(
        description="The code_suggestions purchases (of one group with `namespaceId`)."
    )
    async def add_on_purchases(
        self,
        info: strawberry.Info,
        namespace_id: NamespaceID | None = None,
    ) -> list[AddOnPurchaseType] | None:
        context: GraphQLContext = info.context
        _admin(context, write=False)
        group_id = None if namespace_id is None else _parse_gid(namespace_id, GROUP_GID)

        def read() -> list[AddOnPurchaseType]:
            with context.instance.store.session() as session:
                if group_id is not None and session.get(Group, group_id) is None:
                    raise SeatRequestRefused(NOT_ALLOWED)
                return [
                    _purchase(session, row)
                    for row in seats.purchases(session)
                    if group_id is None or row.group_id == group_id
                ]

        return await to_thread.run_sync(read)


@strawberry.type
class SeatsMutation:
    @strawberry.mutation(description="Assign a seat of an add-on purchase to a user.")
    async def user_add_on_assignment_create(
        self, info: strawberry.Info, input: UserAddOnAssignmentCreateInput
    ) -> UserAddOnAssignmentCreatePayload:
        context: GraphQLContext = info.context
        _admin(context, write=True)
        result = await to_thread.run_sync(
            _change, context, input.add_on_purchase_id, input.user_id, True
        )
        return UserAddOnAssignmentCreatePayload(
            add_on_purchase=result.purchase,
            user=result.user,
            errors=result.errors,
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(
        description="Take a user's seat of an add-on purchase; their live user tokens are "
        "refused by the gateway within a minute."
    )
    async def user_add_on_assignment_remove(
        self, info: strawberry.Info, input: UserAddOnAssignmentRemoveInput
    ) -> UserAddOnAssignmentRemovePayload:
        context: GraphQLContext = info.context
        _admin(context, write=True)
        result = await to_thread.run_sync(
            _change, context, input.add_on_purchase_id, input.user_id, False
        )
        if context.instance.pusher is not None:
            context.instance.pusher.wake()
        return UserAddOnAssignmentRemovePayload(
            add_on_purchase=result.purchase,
            user=result.user,
            errors=result.errors,
            client_mutation_id=input.client_mutation_id,
        )
