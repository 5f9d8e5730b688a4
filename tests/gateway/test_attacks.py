"""Forged, stale and malformed tokens: each gets the contract's exact status and body."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from codesuggest.tokens import PrivateKey, Signer
from support.issuer import instance_headers

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
FORBIDDEN = {"error": "Forbidden by auth provider"}


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def post(gw, token: str, route: str = "/test/protected", **header_overrides):  # type: ignore[no-untyped-def]
    headers = instance_headers(token, INSTANCE_ID) | {"X-Gitlab-Global-User-Id": "gid-1"}
    headers.update(header_overrides)
    with gw.client() as c:
        return c.post(route, headers=headers)


def claims_for(gw, **overrides):  # type: ignore[no-untyped-def]
    now = int(gw.clock.now())
    claims = {
        "iss": gw.portal.url,
        "sub": INSTANCE_ID,
        "aud": ["gitlab-ai-gateway"],
        "gitlab_realm": "self-managed",
        "gitlab_instance_id": INSTANCE_ID,
        "scopes": ["complete_code"],
        "iat": now,
        "nbf": now - 5,
        "exp": now + 3600,
        "jti": "j1",
    }
    claims.update(overrides)
    return claims


def signed(gw, claims, key: PrivateKey | None = None, headers: dict | None = None) -> str:  # type: ignore[no-untyped-def]
    key = key or gw.portal.signing
    return jwt.encode(
        claims, key.key, algorithm="RS256", headers={"kid": key.kid, **(headers or {})}
    )


def test_valid_token_passes(gw) -> None:
    assert post(gw, signed(gw, claims_for(gw))).status_code == 200


def test_alg_none(gw) -> None:
    token = f"{b64({'alg': 'none', 'kid': gw.portal.signing.kid})}.{b64(claims_for(gw))}."
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_hs256_with_public_key_as_secret(gw) -> None:
    public_pem = gw.portal.signing.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": gw.portal.signing.kid}
    signing_input = f"{b64(header)}.{b64(claims_for(gw))}"
    import hashlib
    import hmac

    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    response = post(gw, f"{signing_input}.{b64(sig)}")
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_issuer_a_key_with_issuer_b_iss(gw) -> None:
    # Signed by the SaaS issuer's key but claiming to be the portal.
    token = signed(gw, claims_for(gw), key=gw.saas.signing)
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_expired(gw) -> None:
    now = int(gw.clock.now())
    token = signed(gw, claims_for(gw, iat=now - 7200, nbf=now - 7200, exp=now - 31))
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_expired_within_leeway_passes(gw) -> None:
    now = int(gw.clock.now())
    token = signed(gw, claims_for(gw, iat=now - 7200, nbf=now - 7200, exp=now - 10))
    assert post(gw, token).status_code == 200


def test_nbf_in_future_beyond_leeway(gw) -> None:
    now = int(gw.clock.now())
    token = signed(gw, claims_for(gw, nbf=now + 120))
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_wrong_audience(gw) -> None:
    token = signed(gw, claims_for(gw, aud=["some-other-service"]))
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_tampered_payload(gw) -> None:
    header, _, signature = signed(gw, claims_for(gw)).split(".")
    forged = claims_for(gw, scopes=["complete_code", "generate_code"], sub="other")
    response = post(gw, f"{header}.{b64(forged)}.{signature}")
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_unknown_kid(gw) -> None:
    stranger = PrivateKey.generate()
    response = post(gw, signed(gw, claims_for(gw), key=stranger))
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_jku_pointing_elsewhere_is_ignored(gw) -> None:
    # An attacker's key with a jku header naming its own JWKS: the header is never consulted.
    stranger = PrivateKey.generate()
    token = signed(
        gw,
        claims_for(gw),
        key=stranger,
        headers={"jku": "http://127.0.0.1:9/keys", "x5u": "http://x"},
    )
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_embedded_jwk_header_is_ignored(gw) -> None:
    stranger = PrivateKey.generate()
    token = signed(gw, claims_for(gw), key=stranger, headers={"jwk": stranger.public.jwk()})
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_oversized_token(gw) -> None:
    token = signed(gw, claims_for(gw, padding="x" * 9000))
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


@pytest.mark.parametrize(
    "garbage",
    [
        "abc",
        "a.b",
        "a.b.c",
        "..",
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        "ey.ey.ey",
        "%%%.$$$.###",
        "eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.AAAA",
    ],
)
def test_garbage_and_truncated_tokens(gw, garbage: str) -> None:
    response = post(gw, garbage)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_truncated_valid_token(gw) -> None:
    token = signed(gw, claims_for(gw))
    response = post(gw, token[: len(token) // 2])
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_untrusted_issuer(gw) -> None:
    response = post(gw, signed(gw, claims_for(gw, iss="http://evil.example")))
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_portal_cannot_issue_user_tokens(gw) -> None:
    token = signed(gw, claims_for(gw, sub="gid-1", token_kind="user", aud="gitlab-ai-gateway"))
    response = post(gw, token)
    assert (response.status_code, response.json()) == (401, FORBIDDEN)


def test_no_authorization_header(gw) -> None:
    with gw.client() as c:
        response = c.post("/test/protected", headers={"X-Gitlab-Authentication-Type": "oidc"})
    assert (response.status_code, response.json()) == (
        401,
        {"error": "No authorization header presented"},
    )


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "token", "Bearer\tx"])
def test_invalid_authorization_header(gw, value: str) -> None:
    with gw.client() as c:
        response = c.post(
            "/test/protected",
            headers={"Authorization": value, "X-Gitlab-Authentication-Type": "oidc"},
        )
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Invalid authorization header"},
    )


def test_not_oidc(gw) -> None:
    response = post(gw, signed(gw, claims_for(gw)), **{"X-Gitlab-Authentication-Type": "pat"})
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Invalid authentication token type - only OIDC is supported"},
    )


@pytest.mark.parametrize("header", ["X-Gitlab-Realm", "X-Gitlab-Instance-Id"])
def test_instance_token_header_mismatch(gw, header: str) -> None:
    response = post(gw, signed(gw, claims_for(gw)), **{header: "not-it"})
    assert (response.status_code, response.json()) == (
        401,
        {"error": f"Header mismatch '{header}'"},
    )


def test_user_token_header_mismatch(gw) -> None:
    token = gw.saas.user_token("u-1", INSTANCE_ID, clock=gw.clock)
    headers = {"X-Gitlab-Realm": "saas", "X-Gitlab-Global-User-Id": "u-2"}
    response = post(gw, token, **headers)
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Header mismatch 'X-Gitlab-Global-User-Id'"},
    )


def test_user_token_requires_global_user_id_header(gw) -> None:
    token = gw.saas.user_token("u-1", INSTANCE_ID, clock=gw.clock)
    headers = instance_headers(token, INSTANCE_ID, "saas")
    with gw.client() as c:
        response = c.post("/test/protected", headers=headers)
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Header mismatch 'X-Gitlab-Global-User-Id'"},
    )


def test_token_without_complete_code(gw) -> None:
    response = post(gw, signed(gw, claims_for(gw, scopes=["generate_code"])))
    assert (response.status_code, response.json()) == (
        403,
        {"detail": "Unauthorized to access code completions"},
    )


def test_signer_tokens_carry_kid(gw) -> None:
    token, _ = Signer(gw.portal.signing, gw.portal.url).mint(subject="s", audience="a", lifetime=60)
    assert jwt.get_unverified_header(token)["kid"] == gw.portal.signing.kid
