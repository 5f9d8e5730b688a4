"""What the caller's token is, the way GitLab answers IDEs that check it before anything else:
`GET /api/v4/personal_access_tokens/self` and `GET /oauth/token/info` (docs/contracts.md 4).

The GitLab Language Server asks both in parallel and goes on with whichever answers; it needs
`api` among the PAT's `scopes`. This instance issues no OAuth tokens, so token info answers 401
for every token, as GitLab's Doorkeeper does for a PAT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from codesuggest.instance.identity import authenticate, pat_from_headers
from codesuggest.instance.models import PersonalAccessToken
from codesuggest.instance.routes.deps import ContextDep, PatHeaders, now

router = APIRouter()

OAUTH_INVALID = {
    "error": "invalid_token",
    "error_description": "The access token is invalid",
    "state": "unauthorized",
}
OAUTH_CHALLENGE = (
    'Bearer realm="Doorkeeper", error="invalid_token", '
    'error_description="The access token is invalid"'
)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def token_body(pat: PersonalAccessToken, when: datetime) -> dict[str, Any]:
    """GitLab's personal access token entity (`expires_at` is a date, as GitLab has it)."""
    expired = pat.expires_at is not None and pat.expires_at <= when
    return {
        "id": pat.id,
        "name": pat.name,
        "revoked": pat.revoked,
        "created_at": _iso(pat.created_at),
        "description": None,
        "scopes": pat.scopes.split(),
        "user_id": pat.user_id,
        "last_used_at": _iso(pat.last_used_at),
        "active": not pat.revoked and not expired,
        "expires_at": None if pat.expires_at is None else pat.expires_at.date().isoformat(),
    }


@router.get("/api/v4/personal_access_tokens/self")
async def personal_access_token_self(context: ContextDep, pat: PatHeaders) -> dict[str, Any]:
    """Any valid PAT may read itself, whatever its scopes (a read_api PAT learns it lacks api)."""
    token = pat_from_headers(*pat)
    when = now(context)

    def read() -> dict[str, Any]:
        with context.store.session() as session:
            auth = authenticate(session, token, when)
            pat = session.get(PersonalAccessToken, auth.token_id)
            assert pat is not None
            return token_body(pat, when)

    return await to_thread.run_sync(read)


@router.get("/oauth/token/info")
async def oauth_token_info() -> JSONResponse:
    return JSONResponse(
        OAUTH_INVALID, status_code=401, headers={"WWW-Authenticate": OAUTH_CHALLENGE}
    )
