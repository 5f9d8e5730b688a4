"""The GitLab API surface IDEs call before and around completions, against real servers in
both realms: token self-checks, version, connection details, GraphQL and IDE telemetry
(docs/contracts.md section 4)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from codesuggest.instance import admin
from codesuggest.instance.models import PersonalAccessToken, usage_events
from instance.harness import Stack, stacks

stack = stacks("ide")

USER_QUERY = """query { currentUser { id username name avatarUrl webUrl
  duoCodeSuggestionsAvailable duoChatAvailable duoChatAvailableFeatures
  codeSuggestionsContexts } }"""
FLAGS_QUERY = """query featureFlagsEnabled($names: [String!]!) {
  metadata { version featureFlags(names: $names) { enabled name } } }"""
UA = "gitlab-language-server:8.54.0 (test-ide:1.2.3)"


def gql(stack: Stack, query: str, pat: str | None, **variables: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {pat}"} if pat else {}
    return stack.http.post(
        "/api/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def track(stack: Stack, pat: str | None, event: str, tracking_id: str | None, **extra: object):  # type: ignore[no-untyped-def]
    properties = {"unique_tracking_id": tracking_id, "language": "python", "model_engine": "e"}
    body: dict[str, object] = {"event": event, "additional_properties": properties} | extra
    if tracking_id is None:
        properties.pop("unique_tracking_id")
    headers = {"User-Agent": UA, "X-Gitlab-Language-Server-Version": "8.54.0"}
    if pat:
        headers["Authorization"] = f"Bearer {pat}"
    return stack.http.post("/api/v4/usage_data/track_event", json=body, headers=headers)


def ide_rows(stack: Stack, tracking_id: str) -> list[dict]:
    with stack.store.engine.connect() as conn:
        query = select(usage_events).where(usage_events.c.tracking_id == tracking_id)
        return [dict(r) for r in conn.execute(query).mappings()]


# --- token self-checks -------------------------------------------------------------------


def test_a_pat_reads_itself_with_its_scopes(stack: Stack) -> None:
    pat = stack.user(scopes=("api", "read_api"))
    response = stack.http.get("/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": pat})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scopes"] == ["api", "read_api"]
    assert body["active"] is True and body["revoked"] is False
    assert len(body["expires_at"]) == 10  # a date, as GitLab has it
    assert body["created_at"].endswith("Z")
    with stack.store.session() as s:
        row = s.get(PersonalAccessToken, body["id"])
        assert row is not None and row.user_id == body["user_id"]


def test_a_read_api_pat_reads_itself_and_sees_it_lacks_api(stack: Stack) -> None:
    pat = stack.user(scopes=("read_api",))
    response = stack.http.get(
        "/api/v4/personal_access_tokens/self", headers={"Authorization": f"Bearer {pat}"}
    )
    assert response.status_code == 200
    assert response.json()["scopes"] == ["read_api"]


def test_an_unknown_or_revoked_pat_cannot_read_itself(stack: Stack) -> None:
    pat = stack.user()
    for token in ("glpat-not-a-token", None):
        headers = {"PRIVATE-TOKEN": token} if token else {}
        response = stack.http.get("/api/v4/personal_access_tokens/self", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"message": "401 Unauthorized"}
    token_id = stack.http.get(
        "/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": pat}
    ).json()["id"]
    with stack.store.session() as s:
        admin.revoke_token(s, token_id, stack.now())
    response = stack.http.get("/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": pat})
    assert response.status_code == 401


def test_oauth_token_info_refuses_a_pat_as_gitlab_does(stack: Stack) -> None:
    pat = stack.user()
    response = stack.http.get("/oauth/token/info", headers={"Authorization": f"Bearer {pat}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_version_reports_a_release_with_direct_access(stack: Stack) -> None:
    pat = stack.user(scopes=("read_api",))
    body = stack.http.get("/api/v4/version", headers={"PRIVATE-TOKEN": pat}).json()
    major, minor, _ = (int(p) for p in body["version"].split("."))
    assert (major, minor) >= (17, 2)


def test_connection_details_say_who_and_where_without_a_token(stack: Stack) -> None:
    pat = stack.user()
    response = stack.http.post(
        "/api/v4/code_suggestions/connection_details", headers={"PRIVATE-TOKEN": pat}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    direct = stack.direct_access(pat).json()["headers"]
    assert body["global_user_id"] == direct["x-gitlab-global-user-id"]
    assert body["instance_id"] == direct["x-gitlab-instance-id"]
    assert body["realm"] == stack.realm
    assert "token" not in body
    if stack.realm == "saas":
        assert len(body["saas_duo_pro_namespace_ids"]) == 1
    else:
        assert body["saas_duo_pro_namespace_ids"] == []
    no_seat = stack.user(seat=False)
    refused = stack.http.post(
        "/api/v4/code_suggestions/connection_details", headers={"PRIVATE-TOKEN": no_seat}
    )
    assert refused.status_code == 403


# --- GraphQL -----------------------------------------------------------------------------


def test_current_user_with_a_seat_may_use_suggestions_with_the_allowed_contexts(
    stack: Stack,
) -> None:
    pat = stack.user()
    response = gql(stack, USER_QUERY, pat)
    assert response.status_code == 200, response.text
    user = response.json()["data"]["currentUser"]
    assert user["id"].startswith("gid://gitlab/User/")
    assert user["webUrl"] == f"{stack.settings.url}/{user['username']}"
    assert user["duoCodeSuggestionsAvailable"] is True
    assert user["duoChatAvailable"] is False
    assert user["codeSuggestionsContexts"] == ["open_tabs", "imports"]


def test_current_user_without_a_seat_may_not_use_suggestions(stack: Stack) -> None:
    user = gql(stack, USER_QUERY, stack.user(seat=False)).json()["data"]["currentUser"]
    assert user["duoCodeSuggestionsAvailable"] is False
    assert user["codeSuggestionsContexts"] == []


def test_the_instance_settings_decide_the_contexts_and_their_feature_flags(stack: Stack) -> None:
    pat = stack.user(scopes=("read_api",))
    names = ["advanced_context_resolver", "code_suggestions_context", "no_such_flag"]
    on = gql(stack, FLAGS_QUERY, pat, names=names).json()["data"]["metadata"]
    assert on["featureFlags"] == [
        {"name": "advanced_context_resolver", "enabled": True},
        {"name": "code_suggestions_context", "enabled": True},
        {"name": "no_such_flag", "enabled": False},
    ]
    stack.set("code_suggestions_contexts", "imports")
    try:
        user = gql(stack, USER_QUERY, pat).json()["data"]["currentUser"]
        assert user["codeSuggestionsContexts"] == ["imports"]
        stack.set("code_suggestions_contexts", "")
        off = gql(stack, FLAGS_QUERY, pat, names=names[:2]).json()["data"]["metadata"]
        assert [f["enabled"] for f in off["featureFlags"]] == [False, False]
        single = gql(
            stack, "query($n: String!) { featureFlagEnabled(name: $n) }", pat, n=names[0]
        ).json()
        assert single == {"data": {"featureFlagEnabled": False}}
    finally:
        stack.set("code_suggestions_contexts", "open_tabs imports")
    with pytest.raises(admin.AdminError, match="unknown code suggestion contexts"):
        stack.set("code_suggestions_contexts", "open_tabs shell")


def test_metadata_reports_the_version(stack: Stack) -> None:
    pat = stack.user()
    body = gql(stack, FLAGS_QUERY, pat, names=[]).json()
    assert body["data"]["metadata"]["version"] == stack.settings.version


def test_unknown_projects_are_null_and_absent(stack: Stack) -> None:
    pat = stack.user()
    query = """query($p: ID!, $ids: [ID!]!) {
      project(fullPath: $p) { duoFeaturesEnabled duoContextExclusionSettings { exclusionRules } }
      projects(ids: $ids) { edges { node { id duoFeaturesEnabled } } nodes { id fullPath } } }"""
    body = gql(stack, query, pat, p="group/nothing", ids=["gid://gitlab/Project/1"]).json()
    assert body == {"data": {"project": None, "projects": {"edges": [], "nodes": []}}}


def test_anonymous_graphql_has_no_current_user_and_a_bad_token_is_401(stack: Stack) -> None:
    body = gql(stack, USER_QUERY + " query b { metadata { version } }", None)
    anonymous = stack.http.post(
        "/api/graphql", json={"query": "{ currentUser { id } metadata { version } }"}
    )
    assert anonymous.status_code == 200
    assert anonymous.json() == {"data": {"currentUser": None, "metadata": None}}
    assert body.status_code == 200  # two operations without operationName: a GraphQL error
    assert body.json()["errors"]
    bad = gql(stack, USER_QUERY, "glpat-unknown")
    assert bad.status_code == 401
    assert bad.json() == {"errors": [{"message": "Invalid token"}]}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "must be a JSON object"),
        (b'{"query": ""}', 400, "'query' must be a non-empty string"),
        (b'{"query": "{ currentUser { id } }", "variables": 3}', 400, "'variables'"),
        (b'{"query": "{ currentUser { id } }", "other": 1}', 400, "Unknown request member"),
        (b'{"query": "{ currentUser { nope } }"}', 200, "nope"),
        (b'{"query": "{ currentUser { "}', 200, "Syntax Error"),
        (b'{"query": "mutation { x }"}', 200, "mutation"),
    ],
)
def test_malformed_graphql_gets_a_clear_error_never_a_500(
    stack: Stack, payload: bytes, status: int, message: str
) -> None:
    pat = stack.user()
    response = stack.http.post(
        "/api/graphql",
        content=payload,
        headers={"PRIVATE-TOKEN": pat, "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert message.lower() in " ".join(e["message"] for e in errors).lower()


def test_graphql_not_sent_as_json_gets_415(stack: Stack) -> None:
    response = stack.http.post(
        "/api/graphql",
        content=b'{"query": "{ currentUser { id } }"}',
        headers={"PRIVATE-TOKEN": stack.user(), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json() == {"errors": [{"message": "Send the request as application/json"}]}


def test_oversized_or_abusive_graphql_is_refused(stack: Stack) -> None:
    pat = stack.user()
    big = {"query": "{ currentUser { id } }", "variables": {"x": "a" * 200_000}}
    response = stack.http.post("/api/graphql", json=big, headers={"PRIVATE-TOKEN": pat})
    assert response.status_code == 413
    many = gql(stack, FLAGS_QUERY, pat, names=[f"f{i}" for i in range(51)])
    assert many.status_code == 200
    assert "at most 50" in many.json()["errors"][0]["message"]
    aliases = "{ " + " ".join(f"a{i}: currentUser {{ id }}" for i in range(30)) + " }"
    assert gql(stack, aliases, pat).json()["errors"]


# --- IDE telemetry -----------------------------------------------------------------------


def test_a_shown_then_accepted_suggestion_is_stored_once_each(stack: Stack) -> None:
    pat = stack.user()
    tid = str(uuid.uuid4())
    for _ in range(2):  # a resend counts once
        for event in ("code_suggestion_shown_in_ide", "code_suggestion_accepted_in_ide"):
            response = track(stack, pat, event, tid)
            assert response.status_code == 200, response.text
            assert response.json() == {}
    rows = ide_rows(stack, tid)
    assert sorted(r["name"] for r in rows) == ["code_suggestion_accepted", "code_suggestion_shown"]
    direct = stack.direct_access(pat).json()["headers"]
    for row in rows:
        assert row["source"] == "ide"
        assert row["count"] == 1
        assert row["language"] == "python"
        assert row["client_name"] == UA
        assert row["client_version"] == "8.54.0"
        assert row["realm"] == stack.realm
        assert row["global_user_id"] == direct["x-gitlab-global-user-id"]


def test_another_users_tracking_id_is_refused_and_stores_nothing(stack: Stack) -> None:
    owner, other = stack.user(), stack.user()
    tid = str(uuid.uuid4())
    assert track(stack, owner, "code_suggestion_shown_in_ide", tid).status_code == 200
    response = track(stack, other, "code_suggestion_accepted_in_ide", tid)
    assert response.status_code == 403
    assert "another user" in response.json()["message"]
    assert [r["name"] for r in ide_rows(stack, tid)] == ["code_suggestion_shown"]


@pytest.mark.parametrize(
    ("event", "tracking_id", "status", "needle"),
    [
        ("no_such_event", "t-1", 422, "Unknown event: no_such_event"),
        ("code_suggestion_shown_in_ide", None, 400, "unique_tracking_id is missing"),
        ("code_suggestion_shown_in_ide", "has spaces", 400, "unique_tracking_id is invalid"),
        ("code_suggestion_shown_in_ide", "x" * 65, 400, "unique_tracking_id is invalid"),
    ],
)
def test_bad_telemetry_gets_a_clear_4xx_and_stores_nothing(
    stack: Stack, event: str, tracking_id: str | None, status: int, needle: str
) -> None:
    pat = stack.user()
    response = track(stack, pat, event, tracking_id)
    assert response.status_code == status, response.text
    assert needle in response.text
    if tracking_id:
        assert ide_rows(stack, tracking_id) == []


def test_telemetry_bodies_that_are_not_events_are_refused(stack: Stack) -> None:
    pat = stack.user()
    headers = {"PRIVATE-TOKEN": pat, "Content-Type": "application/json"}
    url = "/api/v4/usage_data/track_event"
    cases = {
        b"{broken": 400,
        b"{}": 400,
        b'{"event": "code_suggestion_shown_in_ide"}': 400,
        b'{"event": 5, "additional_properties": {"unique_tracking_id": "a"}}': 400,
        b'{"event": "code_suggestion_shown_in_ide", "padding": "' + b"a" * 20_000 + b'"}': 413,
    }
    for body, status in cases.items():
        response = stack.http.post(url, content=body, headers=headers)
        assert response.status_code == status, (body[:60], response.text)
        assert "Traceback" not in response.text


def test_telemetry_needs_an_api_token(stack: Stack) -> None:
    tid = str(uuid.uuid4())
    assert track(stack, None, "code_suggestion_shown_in_ide", tid).status_code == 401
    read_only = stack.user(scopes=("read_api",))
    response = track(stack, read_only, "code_suggestion_shown_in_ide", tid)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert ide_rows(stack, tid) == []


def test_the_report_counts_ide_events_per_client_with_the_acceptance_rate(stack: Stack) -> None:
    pat, admin_pat = stack.user(), stack.user(admin_=True)
    agent = f"gitlab-language-server:8.54.0 (report-{uuid.uuid4().hex[:8]}:1.0)"
    for tid, events in (
        (str(uuid.uuid4()), ("shown", "accepted")),
        (str(uuid.uuid4()), ("shown", "rejected")),
        (str(uuid.uuid4()), ("shown",)),
    ):
        for event in events:
            response = stack.http.post(
                "/api/v4/usage_data/track_event",
                json={
                    "event": f"code_suggestion_{event}_in_ide",
                    "additional_properties": {"unique_tracking_id": tid, "language": "go"},
                },
                headers={"PRIVATE-TOKEN": pat, "User-Agent": agent},
            )
            assert response.status_code == 200
    report = stack.http.get(
        "/api/v4/usage/report",
        params={"by": "client", "source": "ide"},
        headers={"PRIVATE-TOKEN": admin_pat},
    )
    assert report.status_code == 200, report.text
    (row,) = [r for r in report.json()["rows"] if r["key"] == agent]
    assert (row["shown"], row["accepted"], row["rejected"], row["requested"]) == (3, 1, 1, 0)
    assert row["acceptance_rate"] == round(1 / 3, 4)
    gateway_only = stack.http.get(
        "/api/v4/usage/report",
        params={"by": "client", "source": "gateway"},
        headers={"PRIVATE-TOKEN": admin_pat},
    ).json()["rows"]
    assert agent not in {r["key"] for r in gateway_only}


def test_over_long_names_in_telemetry_are_cut_not_refused(stack: Stack) -> None:
    pat, tid = stack.user(), str(uuid.uuid4())
    response = stack.http.post(
        "/api/v4/usage_data/track_event",
        json={
            "event": "code_suggestion_shown_in_ide",
            "additional_properties": {
                "unique_tracking_id": tid,
                "language": "l" * 100,
                "model_name": "m" * 300,
            },
        },
        headers={"PRIVATE-TOKEN": pat, "User-Agent": "u" * 400},
    )
    assert response.status_code == 200, response.text
    (row,) = ide_rows(stack, tid)
    assert (len(row["language"]), len(row["model_name"]), len(row["client_name"])) == (64, 255, 255)
