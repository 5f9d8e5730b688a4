"""The instance token, verified like the gateway does: real signature against the live JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from codesuggest.tokens import RemoteKeySet, TokenError, Verifier
from portal.helpers import Portal, instance_headers

THREE_DAYS = 3 * 24 * 3600


def header_of(token: str) -> dict:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@pytest.fixture
async def verifier(portal: Portal) -> AsyncIterator[Verifier]:
    async with httpx.AsyncClient() as http:
        keys = RemoteKeySet(portal.url, http, clock=portal.clock)
        assert await keys.refresh()
        yield Verifier([keys], audience="gitlab-ai-gateway", clock=portal.clock)


def issue(portal: Portal, instance_id: str) -> str:
    key = portal.license_with_addon()
    body = portal.access(key, instance_headers(instance_id)).json()
    return body["data"]["cloudConnectorAccess"]["serviceToken"]["token"]


async def test_every_claim_of_the_instance_token(portal: Portal, verifier: Verifier) -> None:
    instance_id = str(uuid.uuid4())
    token = issue(portal, instance_id)
    claims = await verifier.verify(token)
    iat = int(portal.clock.now())
    assert set(claims) == {
        "iss", "sub", "aud", "iat", "nbf", "exp", "jti",
        "gitlab_realm", "gitlab_instance_id", "scopes",
    }  # fmt: skip
    assert claims["iss"] == portal.url
    assert claims["sub"] == instance_id
    assert claims["gitlab_instance_id"] == instance_id
    assert claims["aud"] == ["gitlab-ai-gateway"]
    assert claims["gitlab_realm"] == "self-managed"
    assert claims["scopes"] == ["complete_code", "generate_code"]
    assert claims["iat"] == iat
    assert claims["nbf"] == iat - 5
    assert claims["exp"] == iat + THREE_DAYS
    assert str(uuid.UUID(claims["jti"])) == claims["jti"]
    header = header_of(token)
    assert header["alg"] == "RS256"
    [signing] = [k for k in portal.admin.list_keys() if k.state == "signing"]
    assert header["kid"] == signing.kid


async def test_each_token_has_its_own_jti(portal: Portal, verifier: Verifier) -> None:
    first = await verifier.verify(issue(portal, "inst-a"))
    second = await verifier.verify(issue(portal, "inst-a"))
    assert first["jti"] != second["jti"]


async def test_a_tampered_token_does_not_verify(portal: Portal, verifier: Verifier) -> None:
    header, payload, signature = issue(portal, "inst-b").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scopes"] = ["complete_code", "generate_code", "admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError) as caught:
        await verifier.verify(f"{header}.{forged}.{signature}")
    assert caught.value.reason == "bad_signature"


async def test_token_expires_after_three_days(portal: Portal, verifier: Verifier) -> None:
    token = issue(portal, "inst-c")
    await verifier.verify(token)
    portal.clock.advance(THREE_DAYS + 31)  # past exp and the verifier's 30 s leeway
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "expired"


def test_openid_configuration(portal: Portal) -> None:
    response = portal.http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json() == {
        "issuer": portal.url,
        "jwks_uri": f"{portal.url}/oauth/discovery/keys",
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def test_jwks_document(portal: Portal) -> None:
    response = portal.http.get("/oauth/discovery/keys")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=86400, public"
    [key] = response.json()["keys"]  # a fresh portal publishes just its first key
    assert set(key) == {"kty", "kid", "e", "n", "use", "alg"}  # no private members
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
    canonical = json.dumps({"e": key["e"], "kty": "RSA", "n": key["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    assert key["kid"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()  # RFC 7638
    assert header_of(issue(portal, "inst-d"))["kid"] == key["kid"]


def test_healthz(portal: Portal) -> None:
    response = portal.http.get("/monitoring/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
