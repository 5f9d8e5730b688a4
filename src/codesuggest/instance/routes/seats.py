"""Seats of the code_suggestions add-on over REST, for scripts (ours: GitLab manages seats only
through GraphQL; this twin takes the same ids as the `userAddOnAssignmentCreate` and
`userAddOnAssignmentRemove` mutations). Administrators only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from codesuggest.instance import seats
from codesuggest.instance.identity import Authenticated
from codesuggest.instance.models import AddOnPurchase, Group
from codesuggest.instance.routes import admin_calls as calls
from codesuggest.instance.routes.deps import get_context, now

router = APIRouter(prefix="/api/v4/add_on_purchases")


def purchase_body(session: Session, row: AddOnPurchase, web_base: str) -> dict[str, Any]:
    group = session.get(Group, row.group_id) if row.group_id else None
    users = seats.assigned_users(session, row.id)
    return {
        "id": row.id,
        "name": "CODE_SUGGESTIONS",
        "purchased_quantity": row.quantity,
        "assigned_quantity": len(users),
        "group": group.path if group else None,
        "assigned_users": [calls.user_body(user, web_base) for user in users],
    }


@router.get("")
async def list_purchases(request: Request) -> list[dict[str, Any]]:
    base = get_context(request).settings.url

    def listing(session: Session, _: Authenticated) -> list[dict[str, Any]]:
        return [purchase_body(session, row, base) for row in seats.purchases(session)]

    return await calls.call(request, listing, write=False)


@router.post("/{purchase_id:int}/assignments", status_code=201)
async def assign(request: Request, purchase_id: calls.Id) -> JSONResponse:
    """Body `{"user_id": N}`: 201 with the purchase (also when the user held a seat)."""
    found = await calls.params(request)
    context = get_context(request)

    def take(session: Session, _: Authenticated) -> dict[str, Any]:
        found.require("user_id")
        user_id = found.as_int("user_id")
        assert user_id is not None
        seats.assign_to_purchase(session, purchase_id, user_id, now(context))
        return purchase_body(
            session, seats.get_purchase(session, purchase_id), context.settings.url
        )

    body = await calls.call(request, take, write=True, found=found, missing="detail")
    return JSONResponse(body, status_code=201)


@router.delete("/{purchase_id:int}/assignments/{user_id:int}", status_code=204)
async def unassign(request: Request, purchase_id: calls.Id, user_id: calls.Id) -> Response:
    """204; 404 when the user holds no seat of this purchase. The user's user tokens are
    refused by the gateway within a minute."""
    context = get_context(request)

    def free(session: Session, _: Authenticated) -> None:
        if not seats.unassign_from_purchase(session, purchase_id, user_id, now(context)):
            raise seats.SeatNotFound(f"user {user_id} holds no seat of purchase {purchase_id}")

    await calls.call(request, free, write=True, missing="detail")
    return Response(status_code=204)
