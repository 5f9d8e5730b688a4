"""`/api/v4/version`, `/api/v4/user` and the admin application settings."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request

from codesuggest.common import strict_json
from codesuggest.instance import errors
from codesuggest.instance.access import authenticated_user
from codesuggest.instance.admin import SETTABLE, AdminError, parse_setting
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.identity import authenticate, pat_from_headers, require_admin
from codesuggest.instance.models import ApplicationSettings, User
from codesuggest.instance.routes.deps import ContextDep, PatHeaders, now
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import application_settings

router = APIRouter(prefix="/api/v4")


@router.get("/version")
async def version(context: ContextDep, pat: PatHeaders) -> dict[str, str]:
    _, info = await to_thread.run_sync(authenticated_user, context.store, *pat, now(context))
    return {"version": info.version, "revision": context.settings.revision}


@router.get("/user")
async def user(context: ContextDep, pat: PatHeaders) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        with context.store.session() as session:
            auth = authenticate(session, pat_from_headers(*pat), now(context))
            row = session.get(User, auth.user_id)
            assert row is not None
            return {
                "id": row.id,
                "username": row.username,
                "name": row.username,
                "state": "blocked" if row.blocked else "active",
                "is_admin": row.admin,
                "created_at": row.created_at.isoformat(),
            }

    return await to_thread.run_sync(read)


def _settings_body(row: ApplicationSettings) -> dict[str, Any]:
    return {name: getattr(row, name) for name in SETTABLE} | {"instance_uuid": row.instance_uuid}


GATEWAY_URLS = ("gateway_url", "edge_url")


def _check_allowed_gateway(settings: InstanceSettings, key: str, url: str) -> None:
    """The instance token goes to these URLs: only the deploy-time ones may be chosen here."""
    if url not in settings.gateway_urls():
        raise errors.InstanceError(
            403,
            {
                "error": f"{key} can only be set to a gateway URL allowed at deploy time "
                "(CODESUGGEST_INSTANCE_GATEWAY_URL, _EDGE_URL or _ALLOWED_GATEWAY_URLS)"
            },
        )


def _admin_session(
    context: InstanceContext, pat: tuple[str | None, str | None], update: dict[str, Any] | None
) -> dict[str, Any]:
    with context.store.session() as session:
        auth = authenticate(session, pat_from_headers(*pat), now(context))
        if update is not None and "api" not in auth.scopes:
            raise errors.insufficient_scope()
        require_admin(auth)
        row = application_settings(session)
        for key, value in (update or {}).items():
            try:
                parsed = parse_setting(key, value)
            except AdminError as exc:
                raise errors.InstanceError(400, {"error": str(exc)}) from exc
            if key in GATEWAY_URLS and parsed is not None:
                _check_allowed_gateway(context.settings, key, str(parsed))
            setattr(row, key, parsed)
        return _settings_body(row)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _update_from(request: Request) -> dict[str, Any]:
    """GitLab accepts the values as query parameters, a form or JSON."""
    values: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if raw and content_type.startswith("application/json"):
        try:
            body = strict_json.loads(raw)
        except strict_json.BadJson as exc:
            raise errors.InstanceError(400, {"error": str(exc)}) from exc
        if not isinstance(body, dict):
            raise errors.InstanceError(400, {"error": "the request body must be a JSON object"})
        values.update(body)
    elif raw and content_type.startswith(FORM_TYPES):
        form = await request.form()
        values.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif raw:
        raise errors.InstanceError(
            415, {"error": "send the settings as JSON, a form or query parameters"}
        )
    unknown = sorted(set(values) - set(SETTABLE))
    if unknown:
        raise errors.InstanceError(400, {"error": f"unknown settings: {', '.join(unknown)}"})
    return values


@router.get("/application/settings")
async def get_settings(context: ContextDep, pat: PatHeaders) -> dict[str, Any]:
    return await to_thread.run_sync(_admin_session, context, pat, None)


@router.put("/application/settings")
async def put_settings(request: Request, context: ContextDep, pat: PatHeaders) -> dict[str, Any]:
    update = await _update_from(request)
    return await to_thread.run_sync(_admin_session, context, pat, update)
