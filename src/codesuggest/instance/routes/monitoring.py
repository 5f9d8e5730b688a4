"""Readiness (liveness is the shared `/monitoring/healthz`)."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from codesuggest.instance.context import InstanceContext
from codesuggest.instance.routes.deps import ContextDep
from codesuggest.instance.store import application_settings
from codesuggest.instance.sync import newest_live_token
from codesuggest.tokens import REALM_SAAS

router = APIRouter(prefix="/monitoring")
RETRY_AFTER = {"Retry-After": "5"}


def _why_no_token(context: InstanceContext) -> str:
    """Why a self-managed instance holds no live instance token, in words an operator acts on."""
    settings, scheduler = context.settings, context.scheduler
    if scheduler is None:
        if not settings.license_key:
            return "no license key configured (CODESUGGEST_INSTANCE_LICENSE_KEY)"
        return "the token sync is off here: run `codesuggest instance sync`"
    last = scheduler.last
    if last is None:
        return f"the first token sync with the portal at {settings.portal_url} is running"
    if last.outcome == "failed":
        return f"the last token sync failed: {last.reason}"
    if last.outcome == "cleared":
        return last.reason
    return "none stored: `codesuggest instance sync --force` asks the portal for one"


@router.get("/ready")
async def ready(context: ContextDep) -> JSONResponse:
    """Ready when the database answers and the instance can reach the gateway on users' behalf:
    a SaaS instance holds its signing key; a self-managed one a live portal-signed instance
    token. A held token keeps a self-managed instance ready through failed syncs (it is valid
    for days and every route still works); without one, `direct_access` cannot be served."""

    def check() -> tuple[str, bool]:
        with context.store.session() as session:
            session.execute(text("SELECT 1"))
            realm = application_settings(session).realm
            if realm == REALM_SAAS:
                return realm, bool(context.keyring.public_keys(session))
            return realm, newest_live_token(session, context.clock.now()) is not None

    try:
        realm, has_credential = await to_thread.run_sync(check)
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "error", "error": f"database unavailable ({type(exc).__name__})"},
            status_code=503,
            headers=RETRY_AFTER,
        )
    body: dict[str, object] = {"status": "ok", "realm": realm, "instance_token": has_credential}
    if has_credential:
        last = context.scheduler.last if context.scheduler else None
        if last is not None and not last.ok:
            body["sync_error"] = last.reason  # still ready: the token held is live
        return JSONResponse(body)
    if realm == REALM_SAAS:
        error = "no signing key: run `codesuggest instance keys create`"
    else:
        error = f"no instance token: {_why_no_token(context)}"
    body.update(status="not ready", error=error)
    return JSONResponse(body, status_code=503, headers=RETRY_AFTER)
