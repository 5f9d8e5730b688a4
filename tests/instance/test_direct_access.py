"""`POST /api/v4/code_suggestions/direct_access` against real portal, gateway and instance
servers, over SQLite and PostgreSQL, in both realms (docs/contracts.md section 4)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import delete, select

from codesuggest.instance import admin
from codesuggest.instance.models import ServiceAccessToken
from instance.harness import Stack

SAMPLE = {
    "prompt_version": 1,
    "current_file": {
        "file_name": "app/files.py",
        "content_above_cursor": "import os\n\n\ndef read_file(path):\n    with open(path) as f:\n"
        "        return f.",
        "content_below_cursor": "\n",
    },
}
DISABLED = {"message": "403 Forbidden - Direct connections are disabled"}
TOO_MANY = {
    "message": {"error": "This endpoint has been requested too many times. Try again later."}
}


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_seed_sequence_pat_to_user_token_the_gateway_accepts(stack: Stack) -> None:
    pat = stack.user()
    response = stack.direct_access(pat)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"base_url", "token", "expires_at", "headers"}
    assert body["base_url"] == f"{stack.gateway.url}/ai"
    headers = body["headers"]
    assert headers["x-gitlab-realm"] == stack.realm
    assert headers["x-gitlab-host-name"] == "127.0.0.1"
    assert headers["x-gitlab-feature-enablement-type"] == "duo_pro"
    assert headers["X-Gitlab-Authentication-Type"] == "oidc"
    token_claims = claims(body["token"])
    assert body["expires_at"] == token_claims["exp"]
    assert token_claims["sub"] == headers["x-gitlab-global-user-id"]
    assert token_claims["gitlab_instance_id"] == headers["x-gitlab-instance-id"]
    assert token_claims["gitlab_realm"] == stack.realm
    assert token_claims["scopes"] == ["complete_code"]
    if stack.realm == "saas":
        assert token_claims["iss"] == stack.settings.url
        assert token_claims["token_kind"] == "user"
        assert token_claims["exp"] - token_claims["iat"] == 3600
    else:
        assert token_claims["iss"] == "gitlab-ai-gateway"
    # The client calls the gateway (through the edge routes) with exactly what it was given.
    completion = httpx.post(
        body["base_url"] + "/v2/completions",
        json=SAMPLE,
        headers={"Authorization": f"Bearer {body['token']}", **headers},
        timeout=30,
    )
    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["text"]


def test_global_user_id_is_stable_and_not_the_database_id(stack: Stack) -> None:
    pat = stack.user()
    first = stack.direct_access(pat).json()["headers"]["x-gitlab-global-user-id"]
    other = stack.direct_access(stack.user()).json()["headers"]["x-gitlab-global-user-id"]
    stack.clock.advance(3600)  # a fresh token, same id
    again = stack.direct_access(pat).json()["headers"]["x-gitlab-global-user-id"]
    assert first == again != other
    assert not first.isdigit() and len(first) >= 40


def test_pinned_model_is_returned_as_model_details(stack: Stack) -> None:
    stack.set("model_provider", "anthropic")
    stack.set("model_name", "claude-3-haiku")
    try:
        body = stack.direct_access(stack.user()).json()
    finally:
        stack.set("model_provider", "")
        stack.set("model_name", "")
    assert body["model_details"] == {"model_provider": "anthropic", "model_name": "claude-3-haiku"}
    assert "model_details" not in stack.direct_access(stack.user()).json()


@pytest.mark.parametrize("how", ["none", "unknown", "revoked", "expired", "bad-bearer"])
def test_401_for_missing_invalid_revoked_expired_pat(stack: Stack, how: str) -> None:
    pat = stack.user()
    headers = {}
    if how == "unknown":
        pat = "glpat-not-a-real-token-000000"
    elif how == "revoked":
        with stack.store.session() as s:
            token_id = next(t.id for t in admin.list_tokens(s, _owner(stack, pat)))
            admin.revoke_token(s, token_id, stack.now())
    elif how == "expired":
        name = _owner(stack, pat)
        with stack.store.session() as s:
            pat = admin.create_token(s, name, stack.now() - timedelta(days=40), days=30).token
    elif how == "bad-bearer":
        headers["Authorization"] = "Basic " + pat
        pat = None
    before = stack.gateway_calls()
    response = stack.direct_access(None if how == "none" else pat, **headers)
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert stack.gateway_calls() == before


def _owner(stack: Stack, pat: str) -> str:
    from codesuggest.common.sealing import hash_secret
    from codesuggest.instance.models import PersonalAccessToken, User

    with stack.store.session() as s:
        return s.scalar(
            select(User.username)
            .join(PersonalAccessToken, PersonalAccessToken.user_id == User.id)
            .where(PersonalAccessToken.token_digest == hash_secret(pat))
        )


def test_bearer_header_is_accepted_like_private_token(stack: Stack) -> None:
    pat = stack.user()
    assert stack.direct_access(None, Authorization=f"Bearer {pat}").status_code == 201


def test_read_api_only_is_403_insufficient_scope(stack: Stack) -> None:
    before = stack.gateway_calls()
    response = stack.direct_access(stack.user(scopes=("read_api",)))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert stack.gateway_calls() == before


def test_ai_features_scope_is_enough(stack: Stack) -> None:
    assert stack.direct_access(stack.user(scopes=("ai_features",))).status_code == 201


def test_no_seat_is_403_and_the_gateway_is_not_called(stack: Stack) -> None:
    before = stack.gateway_calls()
    response = stack.direct_access(stack.user(seat=False))
    assert response.status_code == 403
    message = response.json()["message"]
    assert message.startswith("403 Forbidden - ") and "seat" in message
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert stack.gateway_calls() == before


def test_blocked_user_is_refused(stack: Stack) -> None:
    pat = stack.user()
    with stack.store.session() as s:
        admin.set_blocked(s, _owner(stack, pat), stack.now())
    response = stack.direct_access(pat)
    assert response.status_code == 403
    assert "blocked" in response.json()["message"]


def test_disabled_direct_connections_is_the_exact_403(stack: Stack) -> None:
    pat = stack.user()
    stack.set("disabled_direct_code_suggestions", True)
    try:
        before = stack.gateway_calls()
        response = stack.direct_access(pat)
    finally:
        stack.set("disabled_direct_code_suggestions", False)
    assert response.status_code == 403
    assert response.json() == DISABLED
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert stack.gateway_calls() == before


def test_the_51st_request_in_a_minute_is_429_with_retry_after(stack: Stack) -> None:
    pat = stack.user()
    statuses = [stack.direct_access(pat).status_code for _ in range(50)]
    assert statuses == [201] * 50
    response = stack.direct_access(pat)
    assert response.status_code == 429
    assert response.json() == TOO_MANY
    assert 1 <= int(response.headers["Retry-After"]) <= 60  # when the first of the 50 ages out
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    # another user is not affected (the window moving on: tests/instance/test_ratelimit.py)
    assert stack.direct_access(stack.user()).status_code == 201


def test_100_calls_by_one_user_mint_once(stack: Stack) -> None:
    pat = stack.user()
    before, signed = stack.mints, stack.ctx.user_tokens.mints
    tokens = set()
    stack.ctx.settings.direct_access_per_minute = 1000  # the limit is not what this is about
    try:
        for i in range(100):
            if i % 40 == 39:
                stack.clock.advance(60)  # the token is reused as time goes on
            tokens.add(stack.direct_access(pat).json()["token"])
    finally:
        stack.ctx.settings.direct_access_per_minute = 50
    assert len(tokens) == 1
    assert stack.ctx.user_tokens.mints - signed == 1
    if stack.realm == "self-managed":
        assert stack.mints - before == 1


def test_50_concurrent_first_calls_mint_once(stack: Stack) -> None:
    pat = stack.user()
    before, signed = stack.mints, stack.ctx.user_tokens.mints

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.instance.url, timeout=20) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/v4/code_suggestions/direct_access", headers={"PRIVATE-TOKEN": pat}
                    )
                    for _ in range(50)
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [201] * 50
    assert len({r.json()["token"] for r in responses}) == 1
    assert stack.ctx.user_tokens.mints - signed == 1
    if stack.realm == "self-managed":
        assert stack.mints - before == 1


def test_token_is_replaced_5_minutes_before_expiry(stack: Stack) -> None:
    pat = stack.user()
    first = stack.direct_access(pat).json()
    stack.clock.set(first["expires_at"] - 301)
    assert stack.direct_access(pat).json()["token"] == first["token"]
    stack.clock.set(first["expires_at"] - 299)
    if stack.realm == "self-managed":
        before = stack.mints
    second = stack.direct_access(pat).json()
    assert second["token"] != first["token"]
    if stack.realm == "self-managed":
        assert stack.mints == before + 1


# A SaaS instance here signs user tokens itself: there is no gateway call to fail. The SaaS
# instance minting through the gateway is covered in test_gateway_path.py.
@pytest.mark.stacks(realm="self-managed")
def test_gateway_down_is_503_fast(stack: Stack) -> None:
    pat = stack.user()
    stack.set("edge_url", "http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        started = time.monotonic()
        response = stack.direct_access(pat)
        elapsed = time.monotonic() - started
    finally:
        stack.set("edge_url", "")
    assert response.status_code == 503
    body = response.json()
    assert "unreachable" in body["message"] and body["error"].startswith("gateway_unreachable")
    assert response.headers["X-GitLab-Error-Origin"] == "monolith"
    assert elapsed < 1.5


@pytest.mark.stacks(realm="self-managed")
def test_no_portal_token_is_503_saying_so(stack: Stack) -> None:
    pat = stack.user()
    with stack.store.session() as s:
        saved = [
            (r.token_sealed, r.expires_at, r.created_at)
            for r in s.scalars(select(ServiceAccessToken))
        ]
        s.execute(delete(ServiceAccessToken))
    try:
        before = stack.gateway_calls()
        response = stack.direct_access(pat)
    finally:
        with stack.store.session() as s:
            for sealed, expires_at, created_at in saved:
                s.add(
                    ServiceAccessToken(
                        token_sealed=sealed, expires_at=expires_at, created_at=created_at
                    )
                )
    assert response.status_code == 503
    assert response.json()["error"] == "missing_instance_token"
    assert "instance token" in response.json()["message"]
    assert stack.gateway_calls() == before


@pytest.mark.stacks(realm="self-managed")
def test_gateway_refusal_is_passed_through(stack: Stack) -> None:
    """An instance token the gateway does not trust: its 401 comes back as it is."""
    from codesuggest.tokens import PrivateKey, Signer

    forged, _ = Signer(PrivateKey.generate(), stack.portal.server.url).mint(
        subject="x", audience=["gitlab-ai-gateway"], lifetime=86400 * 5
    )
    pat = stack.user()
    with stack.store.session() as s:
        row = ServiceAccessToken(
            token_sealed=stack.store.sealer.seal(forged),
            expires_at=stack.now() + timedelta(days=10),
            created_at=stack.now(),
        )
        s.add(row)
    try:
        response = stack.direct_access(pat)
    finally:
        with stack.store.session() as s:
            s.execute(delete(ServiceAccessToken).where(ServiceAccessToken.id == row.id))
    assert response.status_code == 401
    assert "error" in response.json()  # the gateway's body, e.g. "Forbidden by auth provider"
    assert "X-GitLab-Error-Origin" not in response.headers


def test_secrets_are_neither_stored_in_clear_nor_logged(stack: Stack) -> None:
    from instance.logcapture import capture_logs, release

    handler = capture_logs()
    try:
        pat = stack.user()
        token = stack.direct_access(pat).json()["token"]
        stack.set("edge_url", "http://127.0.0.1:9")
        try:
            stack.direct_access(stack.user())  # a failing mint logs a warning
        finally:
            stack.set("edge_url", "")
        synced = stack.sync(force=True) if stack.realm == "self-managed" else None
        with stack.store.session() as s:
            instance_token = stack.ctx.instance_tokens.for_gateway(s, _info(stack, s))
    finally:
        release(handler)
    logged = handler.text
    assert logged, "expected some log lines from the flows above"
    for secret in (pat, token, instance_token, stack.settings.license_key, stack.settings.secret):
        assert secret not in logged
    if synced is not None:
        assert synced.outcome == "stored"
    stored = _dump(stack)
    assert pat not in stored and instance_token not in stored and token not in stored
    assert "PRIVATE KEY" not in stored


def _info(stack: Stack, session):  # type: ignore[no-untyped-def]
    from codesuggest.instance.access import InstanceInfo
    from codesuggest.instance.store import application_settings

    return InstanceInfo.of(application_settings(session))


def _dump(stack: Stack) -> str:
    from sqlalchemy import text

    tables = (
        "users",
        "personal_access_tokens",
        "service_access_tokens",
        "cloud_connector_keys",
        "application_settings",
    )
    with stack.store.session() as s:
        return "\n".join(
            repr(tuple(row)) for t in tables for row in s.execute(text(f"SELECT * FROM {t}"))
        )
