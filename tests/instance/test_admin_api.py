"""The admin REST API with GitLab's shapes: users, personal access tokens, seats — against a
real instance server over SQLite and PostgreSQL (docs/instance.md)."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text

from codesuggest.instance import admin
from codesuggest.instance.models import User
from instance.harness import Stack, stacks

stack = stacks("admin-api")
pytestmark = pytest.mark.stacks(realm="self-managed")

USER_KEYS = {
    "id",
    "username",
    "name",
    "state",
    "locked",
    "avatar_url",
    "web_url",
    "created_at",
    "is_admin",
    "bot",
}
TOKEN_KEYS = {
    "id",
    "name",
    "revoked",
    "created_at",
    "description",
    "scopes",
    "user_id",
    "last_used_at",
    "active",
    "expires_at",
}


@pytest.fixture(scope="module")
def pats(stack: Stack) -> dict[str, str]:
    return {
        "admin": stack.user(admin_=True),
        "admin_read": stack.user(admin_=True, scopes=("read_api",)),
        "user": stack.user(),
    }


def as_(pat: str | None) -> dict[str, str]:
    return {"PRIVATE-TOKEN": pat} if pat else {}


def user_id(stack: Stack, pat: str) -> int:
    return stack.http.get("/api/v4/user", headers=as_(pat)).json()["id"]


def snapshot(stack: Stack) -> list[tuple]:
    """Every row an admin call could change."""
    rows: list[tuple] = []
    with stack.store.session() as s:
        for table in ("users", "seat_assignments"):
            rows += [(table, *r) for r in s.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
        query = "SELECT id, push_id, user_id, issued_before, reason FROM revocation_outbox"
        rows += [("outbox", *r) for r in s.execute(text(query + " ORDER BY id"))]
        query = "SELECT id, user_id, name, scopes, revoked, expires_at FROM personal_access_tokens"
        rows += [("pat", *r) for r in s.execute(text(query + " ORDER BY id"))]
    return rows


def purchase_id(stack: Stack) -> int:
    listing = stack.http.get("/api/v4/add_on_purchases", headers=as_(stack_admin(stack)))
    return listing.json()[0]["id"]


def stack_admin(stack: Stack) -> str:
    if not hasattr(stack, "_admin_pat"):
        stack._admin_pat = stack.user(admin_=True)  # type: ignore[attr-defined]
    return stack._admin_pat  # type: ignore[attr-defined]


def test_users_list_has_gitlab_shape_and_pagination_headers(stack: Stack, pats) -> None:
    for _ in range(3):
        stack.user()
    first = stack.http.get("/api/v4/users?per_page=2", headers=as_(pats["admin"]))
    assert first.status_code == 200, first.text
    assert len(first.json()) == 2 and set(first.json()[0]) == USER_KEYS
    total = int(first.headers["X-Total"])
    assert total >= 6
    assert first.headers["X-Per-Page"] == "2" and first.headers["X-Page"] == "1"
    assert first.headers["X-Total-Pages"] == str((total + 1) // 2)
    assert first.headers["X-Next-Page"] == "2" and first.headers["X-Prev-Page"] == ""
    links = first.headers["Link"]
    assert 'rel="next"' in links and 'rel="first"' in links and 'rel="last"' in links
    assert "page=2&per_page=2" in links
    second = stack.http.get("/api/v4/users?per_page=2&page=2", headers=as_(pats["admin"]))
    assert second.headers["X-Prev-Page"] == "1"
    ids = [u["id"] for u in first.json() + second.json()]
    assert ids == sorted(ids) and len(set(ids)) == 4
    with stack.store.session() as s:
        name = s.get(User, ids[0]).username  # type: ignore[union-attr]
    only = stack.http.get(f"/api/v4/users?username={name}", headers=as_(pats["admin"]))
    assert [u["username"] for u in only.json()] == [name] and only.headers["X-Total"] == "1"


def test_create_get_block_unblock_user(stack: Stack, pats) -> None:
    created = stack.http.post(
        "/api/v4/users",
        json={"username": "gitlab-style", "admin": False},
        headers=as_(pats["admin"]),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == USER_KEYS and body["state"] == "active" and body["is_admin"] is False
    uid = body["id"]
    assert stack.http.get(f"/api/v4/users/{uid}", headers=as_(pats["admin"])).json() == body
    again = stack.http.post(
        "/api/v4/users", json={"username": "gitlab-style"}, headers=as_(pats["admin"])
    )
    assert again.status_code == 409 and "already exists" in again.json()["message"]

    blocked = stack.http.post(f"/api/v4/users/{uid}/block", headers=as_(pats["admin"]))
    assert (blocked.status_code, blocked.json()) == (201, True)
    state = stack.http.get(f"/api/v4/users/{uid}", headers=as_(pats["admin"])).json()["state"]
    assert state == "blocked"
    twice = stack.http.post(f"/api/v4/users/{uid}/block", headers=as_(pats["admin"]))
    assert (twice.status_code, twice.json()) == (201, None)
    unblocked = stack.http.post(f"/api/v4/users/{uid}/unblock", headers=as_(pats["admin"]))
    assert (unblocked.status_code, unblocked.json()) == (201, True)
    state = stack.http.get(f"/api/v4/users/{uid}", headers=as_(pats["admin"])).json()["state"]
    assert state == "active"


def test_blocking_a_user_records_one_revocation_and_refuses_their_pat(stack: Stack, pats) -> None:
    pat = stack.user()
    uid = user_id(stack, pat)
    assert stack.direct_access(pat).status_code == 201
    before = snapshot(stack)
    assert stack.http.post(f"/api/v4/users/{uid}/block", headers=as_(pats["admin"])).json()
    refused = stack.direct_access(pat)
    assert refused.status_code == 403 and "blocked" in refused.json()["message"]
    with stack.store.session() as s:
        reasons = s.execute(
            text("SELECT reason FROM revocation_outbox WHERE user_id = :u"), {"u": uid}
        ).all()
    assert [r[0] for r in reasons] == ["blocked"]
    assert len(snapshot(stack)) == len(before) + 1


def test_an_admin_cannot_block_or_delete_themselves(stack: Stack) -> None:
    pat = stack.user(admin_=True)
    uid = user_id(stack, pat)
    before = snapshot(stack)
    for call in (
        lambda: stack.http.post(f"/api/v4/users/{uid}/block", headers=as_(pat)),
        lambda: stack.http.delete(f"/api/v4/users/{uid}", headers=as_(pat)),
    ):
        response = call()
        assert response.status_code == 403, response.text
        assert "initiating user" in response.json()["message"]
    assert snapshot(stack) == before


def test_deleting_a_user_removes_them_and_voids_their_tokens(stack: Stack, pats) -> None:
    pat = stack.user()
    uid = user_id(stack, pat)
    deleted = stack.http.delete(f"/api/v4/users/{uid}", headers=as_(pats["admin"]))
    assert deleted.status_code == 204, deleted.text
    assert stack.http.get(f"/api/v4/users/{uid}", headers=as_(pats["admin"])).status_code == 404
    assert stack.direct_access(pat).status_code == 401
    with stack.store.session() as s:
        assert (
            s.execute(
                text("SELECT reason FROM revocation_outbox WHERE user_id = :u"), {"u": uid}
            ).scalar_one()
            == "deleted"
        )


def test_personal_access_tokens_create_list_revoke(stack: Stack, pats) -> None:
    owner = stack.user()
    uid = user_id(stack, owner)
    expires = (date.today() + timedelta(days=10)).isoformat()
    created = stack.http.post(
        f"/api/v4/users/{uid}/personal_access_tokens",
        json={"name": "ci", "scopes": ["api"], "expires_at": expires},
        headers=as_(pats["admin"]),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == TOKEN_KEYS | {"token"}
    assert body["token"].startswith("glpat-") and body["expires_at"] == expires
    assert body["scopes"] == ["api"] and body["user_id"] == uid and body["active"] is True
    new_pat = body["token"]
    assert stack.direct_access(new_pat).status_code == 201

    listing = stack.http.get(
        f"/api/v4/personal_access_tokens?user_id={uid}", headers=as_(pats["admin"])
    )
    assert listing.status_code == 200 and listing.headers["X-Total"] == "2"
    assert all(set(t) == TOKEN_KEYS for t in listing.json())
    assert "token" not in listing.text.replace('"token', "")  # no secret in a listing
    twin = stack.http.get(f"/api/v4/users/{uid}/personal_access_tokens", headers=as_(pats["admin"]))
    assert twin.json() == listing.json()
    got = stack.http.get(f"/api/v4/personal_access_tokens/{body['id']}", headers=as_(new_pat))
    assert got.status_code == 200 and got.json()["id"] == body["id"]

    revoked = stack.http.delete(
        f"/api/v4/personal_access_tokens/{body['id']}", headers=as_(pats["admin"])
    )
    assert revoked.status_code == 204, revoked.text
    assert stack.direct_access(new_pat).status_code == 401
    assert stack.direct_access(owner).status_code == 201  # their other PAT still works
    inactive = stack.http.get(
        f"/api/v4/personal_access_tokens?user_id={uid}&state=inactive", headers=as_(pats["admin"])
    )
    assert [t["id"] for t in inactive.json()] == [body["id"]]
    assert inactive.json()[0]["revoked"] is True and inactive.json()[0]["active"] is False


def test_a_user_lists_and_revokes_only_their_own_tokens(stack: Stack, pats) -> None:
    mine = stack.user()
    uid = user_id(stack, mine)
    own = stack.http.get("/api/v4/personal_access_tokens", headers=as_(mine))
    assert own.status_code == 200 and {t["user_id"] for t in own.json()} == {uid}
    others = stack.http.get(
        f"/api/v4/personal_access_tokens?user_id={user_id(stack, pats['user'])}",
        headers=as_(mine),
    )
    assert others.status_code == 401
    someone_elses = stack.http.get(
        "/api/v4/personal_access_tokens", headers=as_(pats["user"])
    ).json()[0]["id"]
    before = snapshot(stack)
    refused = stack.http.delete(
        f"/api/v4/personal_access_tokens/{someone_elses}", headers=as_(mine)
    )
    assert refused.status_code == 404
    assert snapshot(stack) == before
    assert (
        stack.http.delete("/api/v4/personal_access_tokens/self", headers=as_(mine)).status_code
        == 204
    )
    assert stack.http.get("/api/v4/user", headers=as_(mine)).status_code == 401


def test_seats_rest_twin_unassign_and_reassign(stack: Stack, pats) -> None:
    pat = stack.user()
    uid = user_id(stack, pat)
    pid = purchase_id(stack)
    listing = stack.http.get("/api/v4/add_on_purchases", headers=as_(pats["admin"])).json()
    entry = next(p for p in listing if p["id"] == pid)
    assert entry["name"] == "CODE_SUGGESTIONS" and entry["group"] is None
    assert uid in [u["id"] for u in entry["assigned_users"]]
    assert entry["assigned_quantity"] == len(entry["assigned_users"])

    freed = stack.http.delete(
        f"/api/v4/add_on_purchases/{pid}/assignments/{uid}", headers=as_(pats["admin"])
    )
    assert freed.status_code == 204, freed.text
    assert stack.direct_access(pat).status_code == 403
    again = stack.http.delete(
        f"/api/v4/add_on_purchases/{pid}/assignments/{uid}", headers=as_(pats["admin"])
    )
    assert again.status_code == 404 and "holds no seat" in again.json()["message"]
    taken = stack.http.post(
        f"/api/v4/add_on_purchases/{pid}/assignments",
        json={"user_id": uid},
        headers=as_(pats["admin"]),
    )
    assert taken.status_code == 201, taken.text
    assert uid in [u["id"] for u in taken.json()["assigned_users"]]
    stack.clock.advance(2)  # past the revocation's second
    assert stack.direct_access(pat).status_code == 201


def routes(stack: Stack, uid: int, token_id: int, pid: int) -> list[tuple[str, str, dict]]:
    """(method, path, json) of every admin route, with valid ids and bodies."""
    return [
        ("GET", "/api/v4/users", {}),
        ("POST", "/api/v4/users", {"username": "never-made"}),
        ("GET", f"/api/v4/users/{uid}", {}),
        ("POST", f"/api/v4/users/{uid}/block", {}),
        ("POST", f"/api/v4/users/{uid}/unblock", {}),
        ("DELETE", f"/api/v4/users/{uid}", {}),
        ("GET", f"/api/v4/users/{uid}/personal_access_tokens", {}),
        ("POST", f"/api/v4/users/{uid}/personal_access_tokens", {"name": "x", "scopes": ["api"]}),
        ("DELETE", f"/api/v4/personal_access_tokens/{token_id}", {}),
        ("GET", "/api/v4/add_on_purchases", {}),
        ("POST", f"/api/v4/add_on_purchases/{pid}/assignments", {"user_id": uid}),
        ("DELETE", f"/api/v4/add_on_purchases/{pid}/assignments/{uid}", {}),
        ("PUT", "/api/v4/application/settings", {"disabled_direct_code_suggestions": True}),
    ]


def test_refused_calls_answer_401_403_and_change_nothing(stack: Stack, pats) -> None:
    victim = stack.user()
    uid = user_id(stack, victim)
    token_id = stack.http.get("/api/v4/personal_access_tokens", headers=as_(victim)).json()[0]["id"]
    pid = purchase_id(stack)
    before = snapshot(stack)
    for method, path, body in routes(stack, uid, token_id, pid):
        kwargs = {"json": body} if body else {}
        anonymous = stack.http.request(method, path, **kwargs)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json() == {"message": "401 Unauthorized"}
        bad = stack.http.request(method, path, headers=as_("glpat-not-a-token"), **kwargs)
        assert bad.status_code == 401, (method, path)
        if "personal_access_tokens/" not in path:  # a user may revoke their own
            other = stack.http.request(method, path, headers=as_(pats["user"]), **kwargs)
            assert other.status_code == 403, (method, path, other.text)
        if method != "GET":
            read_only = stack.http.request(method, path, headers=as_(pats["admin_read"]), **kwargs)
            assert read_only.status_code == 403, (method, path, read_only.text)
            assert read_only.json()["error"] == "insufficient_scope"
    assert snapshot(stack) == before
    assert stack.direct_access(victim).status_code == 201


def test_unknown_ids_answer_404_and_change_nothing(stack: Stack, pats) -> None:
    pid = purchase_id(stack)
    uid = user_id(stack, pats["user"])
    before = snapshot(stack)
    cases = [
        ("GET", "/api/v4/users/999999", {}, "404 User Not Found"),
        ("POST", "/api/v4/users/999999/block", {}, "404 User Not Found"),
        ("POST", "/api/v4/users/999999/unblock", {}, "404 User Not Found"),
        ("DELETE", "/api/v4/users/999999", {}, "404 User Not Found"),
        ("GET", "/api/v4/users/999999/personal_access_tokens", {}, "404 User Not Found"),
        (
            "POST",
            "/api/v4/users/999999/personal_access_tokens",
            {"name": "x", "scopes": ["api"]},
            "404 User Not Found",
        ),
        ("GET", "/api/v4/personal_access_tokens/999999", {}, "404 Personal Access Token Not Found"),
        (
            "DELETE",
            "/api/v4/personal_access_tokens/999999",
            {},
            "404 Personal Access Token Not Found",
        ),
        ("POST", "/api/v4/add_on_purchases/999999/assignments", {"user_id": uid}, "999999"),
        ("POST", f"/api/v4/add_on_purchases/{pid}/assignments", {"user_id": 999999}, "999999"),
        ("DELETE", f"/api/v4/add_on_purchases/999999/assignments/{uid}", {}, "999999"),
    ]
    for method, path, body, message in cases:
        kwargs = {"json": body} if body else {}
        response = stack.http.request(method, path, headers=as_(pats["admin"]), **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert message in response.json()["message"], (method, path, response.text)
    assert snapshot(stack) == before


def test_bad_input_answers_400_naming_the_problem_and_changes_nothing(stack: Stack, pats) -> None:
    uid = user_id(stack, pats["user"])
    pid = purchase_id(stack)
    tokens = f"/api/v4/users/{uid}/personal_access_tokens"
    past = (date.today() - timedelta(days=1)).isoformat()
    before = snapshot(stack)
    cases: list[tuple[str, str, object, str]] = [
        ("GET", "/api/v4/users?page=0", None, "page"),
        ("GET", "/api/v4/users?per_page=abc", None, "per_page"),
        ("GET", "/api/v4/users?blocked=maybe", None, "blocked"),
        ("POST", "/api/v4/users", {}, "username is missing"),
        ("POST", "/api/v4/users", {"username": "has space"}, "username"),
        ("POST", "/api/v4/users", {"username": 42}, "username"),
        ("POST", "/api/v4/users", [1, 2], "JSON object"),
        ("POST", tokens, {"scopes": ["api"]}, "name is missing"),
        ("POST", tokens, {"name": "x"}, "scopes is missing"),
        ("POST", tokens, {"name": "x", "scopes": ["sudo"]}, "unknown scopes"),
        ("POST", tokens, {"name": "x", "scopes": ["api"], "expires_at": "soon"}, "expires_at"),
        ("POST", tokens, {"name": "x", "scopes": ["api"], "expires_at": past}, "future"),
        ("GET", "/api/v4/personal_access_tokens?state=odd", None, "state"),
        ("POST", f"/api/v4/add_on_purchases/{pid}/assignments", {}, "user_id is missing"),
        ("POST", f"/api/v4/add_on_purchases/{pid}/assignments", {"user_id": "x"}, "user_id"),
        # beyond the databases' 64-bit integers (once a 500 from the driver)
        ("GET", f"/api/v4/users/{2**64}", None, "user_id"),
        ("DELETE", f"/api/v4/personal_access_tokens/{2**64}", None, "token_id"),
        ("GET", f"/api/v4/users?page={2**62}&per_page=100", None, "page"),
        ("POST", f"/api/v4/add_on_purchases/{pid}/assignments", {"user_id": 2**64}, "user_id"),
    ]
    for method, path, body, message in cases:
        kwargs = {"json": body} if body is not None else {}
        response = stack.http.request(method, path, headers=as_(pats["admin"]), **kwargs)
        assert response.status_code == 400, (method, path, response.text)
        assert message in response.text, (method, path, response.text)
    garbage = stack.http.post(
        "/api/v4/users",
        content=b"{not json",
        headers={**as_(pats["admin"]), "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400 and "not valid JSON" in garbage.text
    assert snapshot(stack) == before


def test_form_bodies_work_as_in_gitlab(stack: Stack, pats) -> None:
    uid = user_id(stack, pats["user"])
    response = stack.http.post(
        f"/api/v4/users/{uid}/personal_access_tokens",
        data={"name": "form", "scopes[]": ["read_api", "ai_features"]},
        headers=as_(pats["admin"]),
    )
    assert response.status_code == 201, response.text
    assert response.json()["scopes"] == ["read_api", "ai_features"]


def test_service_functions_are_what_the_routes_use(stack: Stack) -> None:
    """The CLI and the admin pages call these; the API answers what they store."""
    with stack.store.session() as s:
        user = admin.create_user(s, "service-made", stack.now())
        uid = user.id
    with stack.store.session() as s:
        assert admin.block_user(s, uid, stack.now()) is True
        assert admin.block_user(s, uid, stack.now()) is False
    with httpx.Client(base_url=stack.instance.url) as http:
        got = http.get(f"/api/v4/users/{uid}", headers=as_(stack_admin(stack)))
    assert got.json()["state"] == "blocked"


PURCHASES = "query { addOnPurchases { id name purchasedQuantity assignedQuantity } }"
ASSIGN = """mutation($p: GitlabSubscriptionsAddOnPurchaseID!, $u: UserID!) {
  userAddOnAssignmentCreate(input: {addOnPurchaseId: $p, userId: $u, clientMutationId: "m1"}) {
    addOnPurchase { id assignedQuantity } user { id username } errors clientMutationId } }"""
REMOVE = ASSIGN.replace("userAddOnAssignmentCreate", "userAddOnAssignmentRemove")
NOT_ALLOWED = "does not exist or you don't have permission"


def graphql(stack: Stack, pat: str | None, query: str, **variables: object) -> dict:
    response = stack.http.post(
        "/api/graphql", json={"query": query, "variables": variables}, headers=as_(pat)
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_graphql_seat_management_with_gitlab_shapes(stack: Stack, pats) -> None:
    pat = stack.user()
    uid = user_id(stack, pat)
    pid = purchase_id(stack)
    listing = graphql(stack, pats["admin"], PURCHASES)["data"]["addOnPurchases"]
    purchase = listing[0]
    assert purchase["id"] == f"gid://gitlab/GitlabSubscriptions::AddOnPurchase/{pid}"
    rest = stack.http.get("/api/v4/add_on_purchases", headers=as_(pats["admin"])).json()[0]
    assert purchase["name"] == "CODE_SUGGESTIONS"
    assert purchase["purchasedQuantity"] == rest["purchased_quantity"] > 0
    used = purchase["assignedQuantity"]
    ids = {"p": purchase["id"], "u": f"gid://gitlab/User/{uid}"}

    removed = graphql(stack, pats["admin"], REMOVE, **ids)["data"]["userAddOnAssignmentRemove"]
    assert removed == {
        "addOnPurchase": {"id": purchase["id"], "assignedQuantity": used - 1},
        "user": {"id": ids["u"], "username": removed["user"]["username"]},
        "errors": [],
        "clientMutationId": "m1",
    }
    assert stack.direct_access(pat).status_code == 403
    again = graphql(stack, pats["admin"], REMOVE, **ids)["data"]["userAddOnAssignmentRemove"]
    assert again["errors"] == ["NO_ASSIGNMENT_FOUND"]
    with stack.store.session() as s:
        assert (
            s.execute(
                text("SELECT count(*) FROM revocation_outbox WHERE user_id = :u"), {"u": uid}
            ).scalar_one()
            == 1
        )

    created = graphql(stack, pats["admin"], ASSIGN, **ids)["data"]["userAddOnAssignmentCreate"]
    assert created["errors"] == [] and created["addOnPurchase"]["assignedQuantity"] == used
    stack.clock.advance(2)  # past the revocation's second
    assert stack.direct_access(pat).status_code == 201


def test_graphql_seats_refused_and_full_change_nothing(stack: Stack, pats) -> None:
    pat = stack.user(seat=False)
    uid = user_id(stack, pat)
    pid = purchase_id(stack)
    ids = {
        "p": f"gid://gitlab/GitlabSubscriptions::AddOnPurchase/{pid}",
        "u": f"gid://gitlab/User/{uid}",
    }
    before = snapshot(stack)
    for who, query in (
        (pats["user"], PURCHASES),
        (pats["user"], ASSIGN),
        (pats["admin_read"], ASSIGN),
        (None, REMOVE),
    ):
        body = graphql(stack, who, query, **({} if query == PURCHASES else ids))
        assert body["data"] is None or not any(body["data"].values()), body
        assert body["errors"], body
    unknown = graphql(
        stack,
        pats["admin"],
        ASSIGN,
        p="gid://gitlab/GitlabSubscriptions::AddOnPurchase/999999",
        u=ids["u"],
    )
    assert NOT_ALLOWED in unknown["errors"][0]["message"]
    malformed = graphql(stack, pats["admin"], ASSIGN, p="purchase-1", u=ids["u"])
    assert "not a valid ID" in malformed["errors"][0]["message"]
    assert snapshot(stack) == before

    with stack.store.session() as s:  # every seat taken
        from codesuggest.instance import seats

        row = seats.get_purchase(s, pid)
        quantity, row.quantity = row.quantity, seats.assigned_count(s, pid)
    try:
        full = graphql(stack, pats["admin"], ASSIGN, **ids)["data"]["userAddOnAssignmentCreate"]
        assert full["errors"] == ["NO_SEATS_AVAILABLE"]
    finally:
        with stack.store.session() as s:
            seats.get_purchase(s, pid).quantity = quantity
    assert stack.direct_access(pat).status_code == 403
