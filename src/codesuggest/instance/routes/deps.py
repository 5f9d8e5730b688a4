"""Helpers the route modules share."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from codesuggest.instance.context import InstanceContext
from codesuggest.instance.models import utc


def ctx(request: Request) -> InstanceContext:
    return request.app.state.ctx


def now(context: InstanceContext) -> datetime:
    return utc(context.clock.now())


def pat_headers(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("private-token"), request.headers.get("authorization")


def request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id") or request.headers.get("x-request-id")
