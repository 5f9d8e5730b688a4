"""The admin pages under `/admin`: sign-in, users and their PATs, seats, settings and the usage
dashboard. Server-rendered (Jinja2) with plain forms; every change goes through the same
service functions as the admin API and the CLI (`admin`, `seats`, `sign_in`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from codesuggest.instance import admin, seats, sign_in
from codesuggest.instance.admin_ui import dashboard
from codesuggest.instance.admin_ui.security import (
    CSRF_FIELD,
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_CSRF_COOKIE,
    AdminForm,
    AdminUser,
    Refused,
    SignInRequired,
    delete_cookie,
    new_sign_in_csrf,
    same,
    set_cookie,
)
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.identity import SCOPES
from codesuggest.instance.routes.deps import ContextDep, now
from codesuggest.instance.settings import CONTEXT_KINDS
from codesuggest.instance.store import application_settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix=PREFIX)
T = TypeVar("T")

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NOTICES = {
    "user-created": "User created. Give them a seat and a personal access token.",
    "blocked": "Blocked: their tokens stop working at once.",
    "unblocked": "Unblocked.",
    "revoked": "Token revoked.",
    "password-set": "Password set.",
    "purchased": "Seat count saved.",
    "assigned": "Seat assigned.",
    "unassigned": "Seat unassigned.",
    "settings-saved": "Settings saved.",
}
ADMIN_ERRORS = (admin.AdminError, seats.SeatError)


def seat_holders(session: Session) -> set[str]:
    return {name for entry in seats.list_seats(session) for name in entry["assigned"]}  # type: ignore[attr-defined]


def page(
    request: Request,
    name: str,
    values: dict[str, Any],
    user: sign_in.SessionUser | None = None,
    status: int = 200,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    context = {
        "user": user,
        "csrf_field": CSRF_FIELD,
        "csrf_token": user.csrf_token if user else None,
        "notice": notice,
        "active": name.removesuffix(".html"),
    } | values
    return templates.TemplateResponse(request, name, context, status_code=status, headers=HEADERS)


def done(path: str, notice: str) -> RedirectResponse:
    """Post/redirect/get: a successful form goes back to its page with a notice."""
    return RedirectResponse(f"{PREFIX}{path}?notice={notice}", status_code=303, headers=HEADERS)


def run(context: InstanceContext, action: Callable[[Session], T]) -> T:
    """`action(session)` in one transaction (rolled back when it raises)."""
    with context.store.session() as session:
        return action(session)


def attempt(context: InstanceContext, action: Callable[[Session], object]) -> str | None:
    """Run a change; the admin error's message if it cannot be done. A change that took access
    away is pushed to the gateway at once."""
    try:
        run(context, action)
    except ADMIN_ERRORS as exc:
        return str(exc)
    if context.pusher is not None:
        context.pusher.wake()
    return None


def text(form: Any, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


# -- sign-in ------------------------------------------------------------------------------------


def _sign_in_page(
    request: Request, context: InstanceContext, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = new_sign_in_csrf()
    response = page(
        request,
        "sign_in.html",
        {"sign_in_csrf": token, "error": error, "next": _next(request.query_params.get("next"))},
        status=status,
    )
    set_cookie(response, request, context, SIGN_IN_CSRF_COOKIE, token, max_age=3600)
    return response


def _next(value: object) -> str:
    """Only a path of these pages (no open redirect)."""
    if isinstance(value, str) and value.startswith(PREFIX + "/") and "//" not in value:
        return value
    return f"{PREFIX}/dashboard"


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/dashboard", status_code=303)


@router.get("/sign_in", response_class=HTMLResponse, include_in_schema=False)
def sign_in_form(request: Request, context: ContextDep) -> HTMLResponse:
    return _sign_in_page(request, context)


@router.post("/sign_in", response_class=HTMLResponse, include_in_schema=False)
async def sign_in_submit(request: Request, context: ContextDep) -> Response:
    form = await request.form()
    if not same(request.cookies.get(SIGN_IN_CSRF_COOKIE), form.get(CSRF_FIELD)):
        return _sign_in_page(
            request, context, "The form was out of date: please sign in again.", 403
        )
    settings = context.settings
    assert context.limiter is not None
    client = request.client.host if request.client else "-"
    decision = await context.limiter.hit("admin_sign_in", client, settings.admin_sign_in_per_minute)
    if not decision.allowed:
        response = _sign_in_page(
            request,
            context,
            f"Too many sign-in attempts: try again in {decision.retry_after} s.",
            429,
        )
        response.headers["Retry-After"] = str(decision.retry_after)
        return response
    username, password = text(form, "username"), str(form.get("password") or "")

    def check(session: Session) -> sign_in.SignIn:
        return sign_in.check_password(
            session,
            username,
            password,
            now(context),
            max_failures=settings.admin_sign_in_failures,
            lockout=timedelta(seconds=settings.admin_lockout_seconds),
        )

    result = await to_thread.run_sync(run, context, check)
    if result.outcome == "locked":
        assert result.locked_until is not None
        minutes = max(1, round((result.locked_until - now(context)).total_seconds() / 60))
        message = f"Too many wrong passwords: sign-in is locked for {minutes} min."
        return _sign_in_page(request, context, message, 429)
    if result.outcome == "wrong":
        return _sign_in_page(request, context, "Wrong username or password.", 401)
    if result.outcome == "blocked" or not result.admin:
        reason = "blocked" if result.outcome == "blocked" else "not an administrator"
        return page(
            request,
            "refused.html",
            {
                "message": f"Signed out: this account is {reason}. These pages are for "
                "administrators only."
            },
            status=403,
        )
    assert result.user_id is not None
    lifetime = timedelta(hours=settings.admin_session_hours)
    user_id = result.user_id
    opened = await to_thread.run_sync(
        run, context, lambda s: sign_in.open_session(s, user_id, now(context), lifetime)
    )
    signed_in = RedirectResponse(_next(form.get("next")), status_code=303, headers=HEADERS)
    set_cookie(
        signed_in, request, context, SESSION_COOKIE, opened.cookie, int(lifetime.total_seconds())
    )
    delete_cookie(signed_in, request, context, SIGN_IN_CSRF_COOKIE)
    return signed_in


@router.post("/sign_out", include_in_schema=False)
def sign_out(request: Request, context: ContextDep, form: AdminForm) -> RedirectResponse:
    run(context, lambda s: sign_in.end_session(s, request.cookies.get(SESSION_COOKIE)))
    response = RedirectResponse(f"{PREFIX}/sign_in", status_code=303, headers=HEADERS)
    delete_cookie(response, request, context, SESSION_COOKIE)
    return response


# -- users and their PATs -----------------------------------------------------------------------


def _users_page(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    def read(session: Session) -> dict[str, Any]:
        return {"users": admin.list_users(session), "holders": seat_holders(session)}

    return page(request, "users.html", run(context, read) | {"error": error}, user, status)


@router.get("/users", response_class=HTMLResponse, include_in_schema=False)
def users(request: Request, context: ContextDep, user: AdminUser) -> HTMLResponse:
    return _users_page(request, context, user)


@router.post("/users", include_in_schema=False)
def users_create(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm
) -> Response:
    username = text(form, "username")
    password = str(form.get("password") or "")

    def create(session: Session) -> None:
        if not username:
            raise admin.AdminError("a username is needed")
        admin.create_user(session, username, now(context), admin=form.get("admin") == "on")
        if password:
            sign_in.set_password(session, username, password)

    error = attempt(context, create)
    if error:
        return _users_page(request, context, user, error, 400)
    return done(f"/users/{quote(username)}", "user-created")


def _user_page(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    username: str,
    error: str | None = None,
    status: int = 200,
    new_token: admin.NewToken | None = None,
) -> HTMLResponse:
    def read(session: Session) -> dict[str, Any]:
        target = next((u for u in admin.list_users(session) if u.username == username), None)
        if target is None:
            return {"target": None}
        return {
            "target": target,
            "tokens": admin.list_tokens(session, username),
            "seat": username in seat_holders(session),
            "now": now(context),
        }

    values = run(context, read)
    if values["target"] is None:
        return page(request, "refused.html", {"message": f"No user {username!r}."}, user, 404)
    values |= {"error": error, "new_token": new_token, "scopes": SCOPES}
    return page(request, "user.html", values, user, status)


@router.get("/users/{username}", response_class=HTMLResponse, include_in_schema=False)
def user_detail(
    request: Request, context: ContextDep, user: AdminUser, username: str
) -> HTMLResponse:
    return _user_page(request, context, user, username)


def _user_change(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    username: str,
    action: Callable[[Session], object],
    notice: str,
) -> Response:
    error = attempt(context, action)
    if error:
        return _user_page(request, context, user, username, error, 400)
    return done(f"/users/{quote(username)}", notice)


@router.post("/users/{username}/block", include_in_schema=False)
def user_block(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm, username: str
) -> Response:
    blocked = form.get("blocked") != "false"
    if blocked and username == user.username:
        return _user_page(request, context, user, username, "You cannot block yourself.", 400)
    return _user_change(
        request,
        context,
        user,
        username,
        lambda s: admin.set_blocked(s, username, now(context), blocked=blocked),
        "blocked" if blocked else "unblocked",
    )


@router.post("/users/{username}/password", include_in_schema=False)
def user_password(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm, username: str
) -> Response:
    password = str(form.get("password") or "")
    return _user_change(
        request,
        context,
        user,
        username,
        lambda s: sign_in.set_password(s, username, password),
        "password-set",
    )


@router.post("/users/{username}/tokens", response_class=HTMLResponse, include_in_schema=False)
def user_token_create(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm, username: str
) -> Response:
    """The new PAT is in this one response only (never stored in clear, never redirected to)."""
    scopes = [s for s in form.getlist("scopes") if isinstance(s, str)] or ["api"]
    days_text = text(form, "days") or "30"
    name = text(form, "name") or "codesuggest"
    try:
        days = int(days_text)
        new = run(
            context,
            lambda s: admin.create_token(s, username, now(context), scopes, days, name),
        )
    except ValueError as exc:  # AdminError is a ValueError too
        message = str(exc) if isinstance(exc, admin.AdminError) else "days must be a number"
        return _user_page(request, context, user, username, message, 400)
    return _user_page(request, context, user, username, new_token=new, status=201)


@router.post("/users/{username}/tokens/{token_id}/revoke", include_in_schema=False)
def user_token_revoke(
    request: Request,
    context: ContextDep,
    user: AdminUser,
    form: AdminForm,
    username: str,
    token_id: int,
) -> Response:
    def revoke(session: Session) -> None:
        if not any(t.id == token_id for t in admin.list_tokens(session, username)):
            raise admin.AdminError(f"{username} has no personal access token {token_id}")
        admin.revoke_token(session, token_id, now(context))

    return _user_change(request, context, user, username, revoke, "revoked")


# -- seats --------------------------------------------------------------------------------------


def _seats_page(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    def read(session: Session) -> dict[str, Any]:
        holders = seat_holders(session)
        return {
            "purchases": seats.list_seats(session),
            "realm": application_settings(session).realm,
            "unseated": [
                u.username for u in admin.list_users(session) if u.username not in holders
            ],
        }

    return page(request, "seats.html", run(context, read) | {"error": error}, user, status)


@router.get("/seats", response_class=HTMLResponse, include_in_schema=False)
def seats_page(request: Request, context: ContextDep, user: AdminUser) -> HTMLResponse:
    return _seats_page(request, context, user)


def _seat_change(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    action: Callable[[Session], object],
    notice: str,
) -> Response:
    error = attempt(context, action)
    if error:
        return _seats_page(request, context, user, error, 400)
    return done("/seats", notice)


def _group(form: Any) -> str | None:
    return text(form, "group") or None


@router.post("/seats/purchase", include_in_schema=False)
def seats_purchase(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm
) -> Response:
    try:
        count = int(text(form, "seats"))
    except ValueError:
        return _seats_page(request, context, user, "the seat count must be a number", 400)
    return _seat_change(
        request,
        context,
        user,
        lambda s: seats.purchase(s, count, now(context), _group(form)),
        "purchased",
    )


def _holder_change(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    form: Any,
    change: Callable[[Session, str, datetime, str | None], object],
    notice: str,
) -> Response:
    """`change` (assign or unassign) for the form's user and group."""
    username, group = text(form, "username"), _group(form)
    return _seat_change(
        request, context, user, lambda s: change(s, username, now(context), group), notice
    )


@router.post("/seats/assign", include_in_schema=False)
def seats_assign(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm
) -> Response:
    return _holder_change(request, context, user, form, seats.assign, "assigned")


@router.post("/seats/unassign", include_in_schema=False)
def seats_unassign(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm
) -> Response:
    return _holder_change(request, context, user, form, seats.unassign, "unassigned")


# -- settings -----------------------------------------------------------------------------------


def _settings_page(
    request: Request,
    context: InstanceContext,
    user: sign_in.SessionUser,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    row = run(context, application_settings)
    values = {
        "row": row,
        "error": error,
        "context_kinds": CONTEXT_KINDS,
        "contexts": set(row.code_suggestions_contexts.split()),
    }
    return page(request, "settings.html", values, user, status)


@router.get("/settings", response_class=HTMLResponse, include_in_schema=False)
def settings_page(request: Request, context: ContextDep, user: AdminUser) -> HTMLResponse:
    return _settings_page(request, context, user)


@router.post("/settings", include_in_schema=False)
def settings_save(
    request: Request, context: ContextDep, user: AdminUser, form: AdminForm
) -> Response:
    direct = form.get("direct_connections") == "on"
    provider, model = text(form, "model_provider"), text(form, "model_name")
    if bool(provider) != bool(model):
        message = "pin a model with both its provider and its name, or clear both"
        return _settings_page(request, context, user, message, 400)

    contexts = " ".join(k for k in form.getlist("contexts") if isinstance(k, str))

    def save(session: Session) -> None:
        admin.set_setting(session, "disabled_direct_code_suggestions", not direct)
        admin.set_setting(session, "code_suggestions_contexts", contexts)
        admin.set_setting(session, "model_provider", provider)
        admin.set_setting(session, "model_name", model)

    error = attempt(context, save)
    if error:
        return _settings_page(request, context, user, error, 400)
    return done("/settings", "settings-saved")


# -- usage dashboard ----------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(
    request: Request, context: ContextDep, user: AdminUser, days: int = Query(30, ge=1, le=366)
) -> HTMLResponse:
    board = run(context, lambda s: dashboard.build(s, context.store.secret, now(context), days))
    return page(request, "dashboard.html", {"board": board, "charts": board.chart_data()}, user)


# -- wiring -------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and what turns a refusal into a page."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="admin-static")

    @app.exception_handler(SignInRequired)
    async def sign_in_required(_: Request, exc: SignInRequired) -> RedirectResponse:
        target = f"{PREFIX}/sign_in?next={quote(exc.next_path)}"
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> HTMLResponse:
        return page(request, "refused.html", {"message": exc.message}, status=exc.status)
