"""What the instance's routes declare in their signatures (FastAPI dependencies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from codesuggest.instance.context import InstanceContext
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
