"""What the instance's routes declare in their signatures (FastAPI dependencies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request

from codesuggest.instance.access import authenticated_user
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.identity import Authenticated, require_admin
from codesuggest.instance.models import utc


def get_context(request: Request) -> InstanceContext:
    context: InstanceContext = request.app.state.ctx
    return context


def pat_headers(request: Request) -> tuple[str | None, str | None]:
    """The `PRIVATE-TOKEN` and `Authorization` headers a PAT may come in."""
    return request.headers.get("private-token"), request.headers.get("authorization")


def request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id") or request.headers.get("x-request-id")


def now(context: InstanceContext) -> datetime:
    return utc(context.clock.now())


ContextDep = Annotated[InstanceContext, Depends(get_context)]
PatHeaders = Annotated[tuple[str | None, str | None], Depends(pat_headers)]
RequestId = Annotated[str | None, Depends(request_id)]


async def current_admin(context: ContextDep, pat: PatHeaders) -> Authenticated:
    """The administrator whose PAT came with the request (401 without a valid PAT, 403 for
    anyone else)."""
    auth, _ = await to_thread.run_sync(authenticated_user, context.store, *pat, now(context))
    require_admin(auth)
    return auth


Administrator = Annotated[Authenticated, Depends(current_admin)]
