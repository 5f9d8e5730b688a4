"""`POST /graphql`: the portal's schema behind the shared GraphQL front
(`common.graphql_http`: JSON bodies only, capped, 400 for malformed requests, errors in
`errors`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codesuggest.common import graphql_http
from codesuggest.common.logs import get_logger
from codesuggest.portal.access import AccessDenied
from codesuggest.portal.context import ContextDep
from codesuggest.portal.graphql_schema import RequestContext

log = get_logger("codesuggest.portal.graphql")
router = APIRouter()

_CALLER_HEADERS = (
    "x-gitlab-instance-id",
    "x-gitlab-host-name",
    "x-gitlab-realm",
    "x-gitlab-version",
)


def _refused(error: Exception) -> None:
    assert isinstance(error, AccessDenied)
    log.info("cloud connector access refused", code=error.code)


@router.post("/graphql")
async def graphql(request: Request, context: ContextDep) -> JSONResponse:
    parsed = await graphql_http.read_request(request, context.settings.max_body_bytes)
    if isinstance(parsed, JSONResponse):
        return parsed
    headers = {name: request.headers[name] for name in _CALLER_HEADERS if name in request.headers}
    return await graphql_http.execute(
        context.graphql_schema,
        parsed,
        RequestContext(service=context.access, headers=headers),
        log,
        refusals=(AccessDenied,),
        on_refusal=_refused,
    )
