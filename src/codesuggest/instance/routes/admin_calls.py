"""What the admin REST routes share: who may call (GitLab's order: 401 no/bad PAT, 403 scope,
403 not an admin, then 400/404 from the request itself), reading parameters the way GitLab does
(query string, JSON or form), GitLab's pagination headers, and mapping admin errors to
statuses. A refused call changes nothing: the admin function runs in one transaction that rolls
back on any error."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from anyio import to_thread
from fastapi import Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from codesuggest.instance import errors
from codesuggest.instance.admin import MAX_PER_PAGE, AdminError, Conflict, NotFound, Page
from codesuggest.instance.identity import Authenticated, authenticate, pat_from_headers
from codesuggest.instance.models import PersonalAccessToken, User
from codesuggest.instance.routes.deps import get_context, now, pat_headers
from codesuggest.instance.seats import SeatError, SeatNotFound

T = TypeVar("T")

MAX_ID = 2**63 - 1  # the databases' signed 64-bit integer: no row has a larger id
Id = Annotated[int, Path(ge=0, le=MAX_ID)]

NOT_FOUND = {"user": "404 User Not Found", "token": "404 Personal Access Token Not Found"}


def bad_request(message: str) -> errors.InstanceError:
    return errors.InstanceError(400, {"error": message})


def not_found(what: str) -> errors.InstanceError:
    return errors.InstanceError(404, {"message": NOT_FOUND.get(what, f"404 {what} Not Found")})


def _check(auth: Authenticated, write: bool, admin_only: bool) -> None:
    if write and "api" not in auth.scopes:
        raise errors.insufficient_scope()
    if not auth.scopes & {"api", "read_api"}:
        raise errors.insufficient_scope()
    if admin_only and not auth.admin:
        raise errors.InstanceError(403, {"message": "403 Forbidden"})


async def call(
    request: Request,
    action: Callable[[Session, Authenticated], T],
    *,
    write: bool,
    found: Params | None = None,
    admin_only: bool = True,
    missing: str = "user",
) -> T:
    """Authenticate, authorize, judge `found`, then run `action(session, caller)` in one
    transaction. `write`: the PAT needs the `api` scope (`read_api` only reads). After any change
    the revocation pusher is woken (the action may have recorded a revocation). `missing` names
    what a NotFound is about: "user", "token", or "detail" (the error's own message)."""
    context = get_context(request)
    pat = pat_headers(request)

    def run() -> T:
        with context.store.session() as session:
            auth = authenticate(session, pat_from_headers(*pat), now(context))
            _check(auth, write, admin_only)
            if found is not None and found.error:
                raise bad_request(found.error)
            try:
                return action(session, auth)
            except (NotFound, SeatNotFound) as exc:
                if missing == "detail":
                    raise errors.InstanceError(404, {"message": f"404 {exc}"}) from exc
                raise not_found(missing) from exc
            except Conflict as exc:
                raise errors.InstanceError(409, {"message": str(exc)}) from exc
            except (AdminError, SeatError) as exc:
                raise bad_request(str(exc)) from exc

    result = await to_thread.run_sync(run)
    if request.method != "GET" and context.pusher is not None:
        context.pusher.wake()
    return result


@dataclass
class Params:
    """Request parameters, read before authentication but judged after it: a malformed body
    is a 400 only for a caller who may make the call."""

    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def as_int(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name, default)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID:
            return value
        raise bad_request(f"{name} is invalid")

    def as_bool(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None or isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes"}:
            return True
        if text in {"false", "0", "no"}:
            return False
        raise bad_request(f"{name} is invalid")

    def as_str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None or isinstance(value, str):
            return value
        raise bad_request(f"{name} is invalid")

    def as_date(self, name: str) -> date | None:
        value = self.data.get(name)
        if value in (None, ""):
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError as exc:
            raise bad_request(f"{name} is invalid: use YYYY-MM-DD") from exc

    def as_list(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise bad_request(f"{name} does not have a valid value")

    def require(self, *names: str) -> None:
        missing = [name for name in names if self.data.get(name) in (None, "", [])]
        if missing:
            raise bad_request(", ".join(f"{name} is missing" for name in missing))

    def paging(self) -> tuple[int, int]:
        page, per_page = self.as_int("page", 1), self.as_int("per_page", 20)
        assert page is not None and per_page is not None
        if page < 1:
            raise bad_request("page is invalid")
        if per_page < 1:
            raise bad_request("per_page is invalid")
        per_page = min(per_page, MAX_PER_PAGE)
        if (page - 1) * per_page > MAX_ID:
            raise bad_request("page is invalid")
        return page, per_page


async def params(request: Request) -> Params:
    """GitLab takes parameters from the query string, a JSON body or a form."""
    found = Params(dict(request.query_params))
    raw = await request.body()
    if not raw:
        return found
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw)
        except ValueError:
            return Params(found.data, "the body is not valid JSON")
        if not isinstance(body, dict):
            return Params(found.data, "the request body must be a JSON object")
        found.data.update(body)
        return found
    form = await request.form()
    for key in form:
        items = form.getlist(key)
        many = key.endswith("[]") or len(items) > 1
        found.data[key.removesuffix("[]")] = items if many else items[0]
    return found


def paged(request: Request, page: Page[T], render: Callable[[T], dict[str, Any]]) -> JSONResponse:
    """The page's items with GitLab's headers: X-Total, X-Total-Pages, X-Per-Page, X-Page,
    X-Next-Page, X-Prev-Page and a Link header (first, last, and next/prev when they exist)."""
    pages = max((page.total + page.per_page - 1) // page.per_page, 1)
    nxt = page.page + 1 if page.page < pages else None
    prev = page.page - 1 if 1 < page.page <= pages + 1 else None
    base = str(request.url.remove_query_params(["page", "per_page"]).replace(query=""))
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in {"page", "per_page"}]

    def link(number: int, rel: str) -> str:
        params = urlencode([*query, ("page", number), ("per_page", page.per_page)])
        return f'<{base}?{params}>; rel="{rel}"'

    links = [link(n, rel) for n, rel in ((prev, "prev"), (nxt, "next")) if n is not None]
    links += [link(1, "first"), link(pages, "last")]
    headers = {
        "X-Total": str(page.total),
        "X-Total-Pages": str(pages),
        "X-Per-Page": str(page.per_page),
        "X-Page": str(page.page),
        "X-Next-Page": str(nxt or ""),
        "X-Prev-Page": str(prev or ""),
        "Link": ", ".join(links),
    }
    return JSONResponse([render(item) for item in page.items], headers=headers)


def user_body(user: User, web_base: str) -> dict[str, Any]:
    """GitLab's user entity, as an administrator sees it (what we store of it)."""
    return {
        "id": user.id,
        "username": user.username,
        "name": user.username,
        "state": "blocked" if user.blocked else "active",
        "locked": False,
        "avatar_url": None,
        "web_url": f"{web_base.rstrip('/')}/{user.username}",
        "created_at": user.created_at.isoformat(),
        "is_admin": user.admin,
        "bot": False,
    }


def token_body(row: PersonalAccessToken, active: bool) -> dict[str, Any]:
    """GitLab's personal access token entity (never the token itself)."""
    return {
        "id": row.id,
        "name": row.name,
        "revoked": row.revoked,
        "created_at": row.created_at.isoformat(),
        "description": None,
        "scopes": row.scopes.split(),
        "user_id": row.user_id,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "active": active,
        "expires_at": row.expires_at.date().isoformat() if row.expires_at else None,
    }
