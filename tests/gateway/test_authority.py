"""The seed's self-managed sequence at the gateway: portal-signed instance token -> user token
-> the user token passes the auth layer; and the SaaS branch."""

from __future__ import annotations

import jwt

from support.issuer import instance_headers

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"


def mint(gw, token: str, user: str | bytes = "gid-42", realm: str = "self-managed"):  # type: ignore[no-untyped-def]
    headers = instance_headers(token, INSTANCE_ID, realm) | {"X-Gitlab-Global-User-Id": user}
    with gw.client() as c:
        return c.post("/v1/code/user_access_token", headers=headers)


def user_headers(token: str, user: str = "gid-42", realm: str = "self-managed") -> dict[str, str]:
    return instance_headers(token, INSTANCE_ID, realm) | {"X-Gitlab-Global-User-Id": user}


def test_portal_token_mints_user_token_that_passes_auth(gw) -> None:
    instance_token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    response = mint(gw, instance_token)
    assert response.status_code == 200, response.text
    body = response.json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["iss"] == "gitlab-ai-gateway"
    assert claims["aud"] == "gitlab-ai-gateway"
    assert claims["sub"] == "gid-42"
    assert claims["gitlab_realm"] == "self-managed"
    assert claims["gitlab_instance_id"] == INSTANCE_ID
    assert claims["scopes"] == ["complete_code"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"] - 5
    assert body["expires_at"] == claims["exp"]
    assert jwt.get_unverified_header(body["token"])["kid"]
    with gw.client() as c:
        ok = c.post("/test/protected", headers=user_headers(body["token"]))
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"sub": "gid-42", "path": "direct", "user": "gid-42"}
        # The gateway's keys are published for anyone verifying its tokens.
        keys = c.get("/oauth/discovery/keys").json()["keys"]
        assert jwt.get_unverified_header(body["token"])["kid"] in {k["kid"] for k in keys}


def test_user_token_lifetime_capped_by_instance_token(gw) -> None:
    instance_token = gw.portal.instance_token(INSTANCE_ID, lifetime=600, clock=gw.clock)
    body = mint(gw, instance_token).json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    instance_claims = jwt.decode(instance_token, options={"verify_signature": False})
    assert claims["exp"] == instance_claims["exp"]


def test_claims_come_from_token_not_headers(gw) -> None:
    # A header that disagrees with the signed realm is refused rather than copied.
    instance_token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    response = mint(gw, instance_token, realm="saas")
    assert response.status_code == 401
    assert response.json() == {"error": "Header mismatch 'X-Gitlab-Realm'"}


def test_missing_global_user_id_is_400(gw) -> None:
    instance_token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    with gw.client() as c:
        response = c.post(
            "/v1/code/user_access_token", headers=instance_headers(instance_token, INSTANCE_ID)
        )
    assert response.status_code == 400
    assert "X-Gitlab-Global-User-Id" in response.json()["detail"]


def test_an_over_long_or_unprintable_global_user_id_is_400(gw) -> None:
    instance_token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    for user in ("g" * 6000, "a b", "caf\u00e9".encode("latin-1")):
        response = mint(gw, instance_token, user=user)
        assert response.status_code == 400, user
        assert "255 printable ASCII" in response.json()["detail"]
    longest = mint(gw, instance_token, user="g" * 255)
    assert longest.status_code == 200
    token = longest.json()["token"]
    with gw.client() as c:  # and the token minted for the longest accepted id is itself accepted
        passed = c.post("/test/protected", headers=user_headers(token, user="g" * 255))
    assert passed.status_code == 200, passed.text


def test_user_token_cannot_mint(gw) -> None:
    user_token = mint(gw, gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)).json()["token"]
    with gw.client() as c:
        response = c.post("/v1/code/user_access_token", headers=user_headers(user_token))
    assert response.status_code == 403
    assert response.json() == {"detail": "Unauthorized to create user access token"}


def test_saas_self_issued_user_token_passes(gw) -> None:
    token = gw.saas.user_token("saas-user", INSTANCE_ID, clock=gw.clock)
    with gw.client() as c:
        ok = c.post("/test/protected", headers=user_headers(token, "saas-user", "saas"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["path"] == "direct"


def test_edge_routes_answer_on_the_gateway(gw) -> None:
    instance_token = gw.portal.instance_token(INSTANCE_ID, clock=gw.clock)
    headers = instance_headers(instance_token, INSTANCE_ID) | {"X-Gitlab-Global-User-Id": "e1"}
    with gw.client() as c:
        minted = c.post("/auth/v1/code/user_access_token", headers=headers)
        assert minted.status_code == 200
        ok = c.post("/ai/test/protected", headers=user_headers(minted.json()["token"], "e1"))
        assert ok.status_code == 200
        assert c.post("/auth/v2/completions").status_code == 404


def test_monitoring_and_metrics(gw) -> None:
    with gw.client() as c:
        assert c.get("/monitoring/healthz").json() == {"status": "ok"}
        assert c.get("/monitoring/ready").status_code == 200
        text = c.get("/metrics").text
    assert "codesuggest_gateway_token_mints_total" in text
    assert "codesuggest_gateway_key_refreshes_total" in text
    assert 'outcome="ok"' in text
