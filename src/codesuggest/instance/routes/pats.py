"""GitLab's personal access tokens API: list (an administrator sees every token, anyone else
their own), get, and revoke by id or `self` (docs/instance.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from codesuggest.common.sealing import hash_secret
from codesuggest.instance import admin, errors
from codesuggest.instance.identity import Authenticated, pat_from_headers
from codesuggest.instance.models import PersonalAccessToken
from codesuggest.instance.routes import admin_calls as calls
from codesuggest.instance.routes.deps import get_context, now, pat_headers

router = APIRouter(prefix="/api/v4/personal_access_tokens")


def _owned(row: PersonalAccessToken, caller: Authenticated) -> PersonalAccessToken:
    """An administrator may act on any token; anyone else only on their own (GitLab answers
    another user's token as not found to them)."""
    if not caller.admin and row.user_id != caller.user_id:
        raise calls.not_found("token")
    return row


@router.get("")
async def list_tokens(request: Request) -> JSONResponse:
    """`user_id` (administrators: anyone; others: only themselves, else 401 as GitLab),
    `revoked`, `state` (active | inactive), `page`, `per_page`."""
    found = await calls.params(request)
    at = now(get_context(request))

    def listing(session: Session, caller: Authenticated) -> admin.Page[PersonalAccessToken]:
        page, per_page = found.paging()
        user_id = found.as_int("user_id")
        if not caller.admin:
            if user_id is not None and user_id != caller.user_id:
                raise errors.unauthorized()
            user_id = caller.user_id
        return admin.tokens_page(
            session,
            at,
            page,
            per_page,
            user_id=user_id,
            revoked=found.as_bool("revoked"),
            state=found.as_str("state"),
        )

    result = await calls.call(request, listing, write=False, found=found, admin_only=False)
    return calls.paged(request, result, lambda t: calls.token_body(t, admin.token_is_active(t, at)))


@router.get("/{token_id:int}")
async def get_token(request: Request, token_id: calls.Id) -> dict[str, Any]:
    at = now(get_context(request))

    def read(session: Session, caller: Authenticated) -> dict[str, Any]:
        row = _owned(admin.get_token(session, token_id), caller)
        return calls.token_body(row, admin.token_is_active(row, at))

    return await calls.call(request, read, write=False, admin_only=False, missing="token")


@router.delete("/self", status_code=204)
async def revoke_self(request: Request) -> Response:
    """Revoke the PAT this request is made with (any scope may)."""
    at = now(get_context(request))
    digest = hash_secret(pat_from_headers(*pat_headers(request)) or "")

    def revoke(session: Session, _: Authenticated) -> None:
        row = admin.token_by_digest(session, digest)
        admin.revoke_token(session, row.id, at)

    await calls.call(request, revoke, write=False, admin_only=False, missing="token")
    return Response(status_code=204)


@router.delete("/{token_id:int}", status_code=204)
async def revoke_token(request: Request, token_id: calls.Id) -> Response:
    """204; the owner's user tokens are refused by the gateway within a minute."""
    at = now(get_context(request))

    def revoke(session: Session, caller: Authenticated) -> None:
        row = _owned(admin.get_token(session, token_id), caller)
        admin.revoke_token(session, row.id, at)

    await calls.call(request, revoke, write=True, admin_only=False, missing="token")
    return Response(status_code=204)
