"""Who may see the admin pages, read through dependencies: the session cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS), admins only, and a CSRF token on every form.

The sign-in form has no session yet: it carries a token that must match a short-lived
`codesuggest_admin_csrf` cookie (double submit). Every other form carries its session's token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from codesuggest.instance import sign_in
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.routes.deps import ContextDep, now

SESSION_COOKIE = "codesuggest_admin"
SIGN_IN_CSRF_COOKIE = "codesuggest_admin_csrf"
CSRF_FIELD = "csrf_token"
PREFIX = "/admin"


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class Refused(Exception):
    """A signed-in browser that may not do this (not an admin, blocked, bad CSRF token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def secure(request: Request, context: InstanceContext) -> bool:
    """Cookies are `Secure` when the browser reached us over HTTPS."""
    return request.url.scheme == "https" or context.settings.url.startswith("https://")


def set_cookie(
    response: Response,
    request: Request,
    context: InstanceContext,
    name: str,
    value: str,
    max_age: int,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure(request, context),
    )


def delete_cookie(
    response: Response, request: Request, context: InstanceContext, name: str
) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=secure(request, context)
    )


def signed_in_admin(request: Request, context: ContextDep) -> sign_in.SessionUser:
    """The admin whose session this is; runs in a worker thread (it reads the database)."""
    with context.store.session() as session:
        user = sign_in.session_user(session, request.cookies.get(SESSION_COOKIE), now(context))
    if user is None:
        raise SignInRequired(request.url.path)
    if user.blocked:
        raise Refused(403, "This account is blocked.")
    if not user.admin:
        raise Refused(403, "These pages are for administrators only.")
    return user


AdminUser = Annotated[sign_in.SessionUser, Depends(signed_in_admin)]


def same(expected: str | None, given: object) -> bool:
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def checked_form(request: Request, user: AdminUser) -> FormData:
    """The posted form, once its CSRF token matches the session's."""
    form = await request.form()
    if not same(user.csrf_token, form.get(CSRF_FIELD)):
        raise Refused(403, "The form's security token is missing or out of date: reload the page.")
    return form


AdminForm = Annotated[FormData, Depends(checked_form)]


def new_sign_in_csrf() -> str:
    return secrets.token_urlsafe(32)
