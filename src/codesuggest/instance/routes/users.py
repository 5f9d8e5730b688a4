"""GitLab's users API for administrators: list, create, get, block, unblock, delete, and the
personal access tokens of one user (docs/instance.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from codesuggest.instance import admin, errors
from codesuggest.instance.identity import Authenticated
from codesuggest.instance.models import PersonalAccessToken, User
from codesuggest.instance.routes import admin_calls as calls
from codesuggest.instance.routes.deps import get_context, now

router = APIRouter(prefix="/api/v4/users")


@router.get("")
async def list_users(request: Request) -> JSONResponse:
    """`?username=`, `?blocked=true`, `?active=true`, `page`, `per_page`."""
    found = await calls.params(request)

    def listing(session: Session, _: Authenticated) -> admin.Page[User]:
        page, per_page = found.paging()
        blocked, active = found.as_bool("blocked"), found.as_bool("active")
        if blocked is None and active is not None:
            blocked = not active
        username = found.as_str("username")
        return admin.users_page(session, page, per_page, username=username, blocked=blocked)

    result = await calls.call(request, listing, write=False, found=found)
    base = get_context(request).settings.url
    return calls.paged(request, result, lambda user: calls.user_body(user, base))


@router.post("", status_code=201)
async def create_user(request: Request) -> JSONResponse:
    """`username` (required), `admin`. GitLab's `name`, `email` and password fields are
    accepted and not stored: users here sign in with personal access tokens."""
    found = await calls.params(request)
    context = get_context(request)

    def create(session: Session, _: Authenticated) -> dict[str, Any]:
        found.require("username")
        username = found.as_str("username") or ""
        is_admin = found.as_bool("admin") or False
        user = admin.create_user(session, username, now(context), admin=is_admin)
        return calls.user_body(user, context.settings.url)

    body = await calls.call(request, create, write=True, found=found)
    return JSONResponse(body, status_code=201)


@router.get("/{user_id:int}")
async def get_user(request: Request, user_id: calls.Id) -> dict[str, Any]:
    base = get_context(request).settings.url
    return await calls.call(
        request, lambda s, _: calls.user_body(admin.get_user(s, user_id), base), write=False
    )


@router.post("/{user_id:int}/block", status_code=201)
async def block_user(request: Request, user_id: calls.Id) -> JSONResponse:
    """201 `true`; `null` when the user was blocked already (as GitLab answers). The user's
    user tokens are refused by the gateway within a minute."""
    context = get_context(request)

    def block(session: Session, caller: Authenticated) -> bool | None:
        admin.get_user(session, user_id)
        if user_id == caller.user_id:
            raise errors.forbidden("The API initiating user cannot be blocked by the API")
        return True if admin.block_user(session, user_id, now(context)) else None

    return JSONResponse(await calls.call(request, block, write=True), status_code=201)


@router.post("/{user_id:int}/unblock", status_code=201)
async def unblock_user(request: Request, user_id: calls.Id) -> JSONResponse:
    def unblock(session: Session, _: Authenticated) -> bool:
        admin.unblock_user(session, user_id)
        return True

    return JSONResponse(await calls.call(request, unblock, write=True), status_code=201)


@router.delete("/{user_id:int}", status_code=204)
async def delete_user(request: Request, user_id: calls.Id) -> Response:
    context = get_context(request)

    def remove(session: Session, caller: Authenticated) -> None:
        admin.get_user(session, user_id)
        if user_id == caller.user_id:
            raise errors.forbidden("The API initiating user cannot be deleted by the API")
        admin.delete_user(session, user_id, now(context))

    await calls.call(request, remove, write=True)
    return Response(status_code=204)


@router.get("/{user_id:int}/personal_access_tokens")
async def list_user_tokens(request: Request, user_id: calls.Id) -> JSONResponse:
    """(ours: GitLab lists them at `GET /personal_access_tokens?user_id=`, which works too)"""
    found = await calls.params(request)
    at = now(get_context(request))

    def listing(session: Session, _: Authenticated) -> admin.Page[PersonalAccessToken]:
        page, per_page = found.paging()
        admin.get_user(session, user_id)
        return admin.tokens_page(session, at, page, per_page, user_id=user_id)

    result = await calls.call(request, listing, write=False, found=found)
    return calls.paged(request, result, lambda t: calls.token_body(t, admin.token_is_active(t, at)))


@router.post("/{user_id:int}/personal_access_tokens", status_code=201)
async def create_user_token(request: Request, user_id: calls.Id) -> JSONResponse:
    """`name`, `scopes` (required), `expires_at` (YYYY-MM-DD; default one year). 201 with the
    token entity plus `token`: the only time the PAT is shown."""
    found = await calls.params(request)
    at = now(get_context(request))

    def create(session: Session, _: Authenticated) -> dict[str, Any]:
        admin.get_user(session, user_id)
        found.require("name", "scopes")
        name = found.as_str("name") or ""
        scopes = found.as_list("scopes") or []
        expires_on = found.as_date("expires_at")
        new = admin.create_token_for(session, user_id, at, name, scopes, expires_on)
        return calls.token_body(admin.get_token(session, new.id), True) | {"token": new.token}

    body = await calls.call(request, create, write=True, found=found)
    return JSONResponse(body, status_code=201)
