"""`POST /api/graphql`: authenticate the PAT (if any), load the viewer once, run the schema.

As GitLab: no token is an anonymous request (`currentUser: null`); an invalid token is a 401
with a GraphQL error body; read_api is enough for queries.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codesuggest.common import graphql_http
from codesuggest.common.logs import get_logger
from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.errors import InstanceError
from codesuggest.instance.graphql.context import GraphQLContext, Viewer
from codesuggest.instance.graphql.schema import REFUSALS, schema
from codesuggest.instance.identity import authenticate, pat_from_headers
from codesuggest.instance.routes.deps import ContextDep, PatHeaders, now
from codesuggest.instance.seats import has_seat
from codesuggest.instance.store import application_settings

log = get_logger("codesuggest.instance.graphql")
router = APIRouter()

MAX_BODY = 100_000


def _load(
    context: InstanceContext, pat: tuple[str | None, str | None]
) -> tuple[InstanceInfo, Viewer | None]:
    token = pat_from_headers(*pat)
    with context.store.session() as session:
        info = InstanceInfo.of(application_settings(session))
        if token is None:
            return info, None
        auth = authenticate(session, token, now(context))
        viewer = Viewer(
            user_id=auth.user_id,
            username=auth.username,
            admin=auth.admin,
            scopes=auth.scopes,
            has_seat=has_seat(session, auth.user_id, info.realm),
        )
    return info, viewer


def _refused(error: Exception) -> None:
    log.info("graphql request refused", error=str(error))


@router.post("/api/graphql")
async def graphql(request: Request, context: ContextDep, pat: PatHeaders) -> JSONResponse:
    parsed = await graphql_http.read_request(request, MAX_BODY)
    if isinstance(parsed, JSONResponse):
        return parsed
    try:
        info, viewer = await to_thread.run_sync(_load, context, pat)
    except InstanceError as exc:
        message = "Invalid token" if exc.status == 401 else str(exc.body.get("message", ""))
        return graphql_http.error_response(exc.status, message)
    return await graphql_http.execute(
        schema,
        parsed,
        GraphQLContext(instance=context, info=info, viewer=viewer),
        log,
        refusals=REFUSALS,
        on_refusal=_refused,
    )
