"""Readiness (liveness is the shared `/monitoring/healthz`)."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from codesuggest.instance.routes.deps import ContextDep
from codesuggest.instance.store import application_settings
from codesuggest.instance.sync import newest_live_token
from codesuggest.tokens import REALM_SAAS

router = APIRouter(prefix="/monitoring")


@router.get("/ready")
async def ready(context: ContextDep) -> JSONResponse:
    """Ready when the database answers. Also reports whether the instance can reach the gateway
    on users' behalf (a live portal token, or a SaaS signing key), without failing on it: users,
    seats and settings still work without one."""

    def check() -> dict[str, object]:
        with context.store.session() as session:
            session.execute(text("SELECT 1"))
            info = application_settings(session)
            if info.realm == REALM_SAAS:
                has_credential = bool(context.keyring.public_keys(session))
            else:
                has_credential = newest_live_token(session, context.clock.now()) is not None
            return {"status": "ok", "realm": info.realm, "instance_token": has_credential}

    try:
        body = await to_thread.run_sync(check)
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "error", "error": f"database unavailable ({type(exc).__name__})"},
            status_code=503,
        )
    return JSONResponse(body)
