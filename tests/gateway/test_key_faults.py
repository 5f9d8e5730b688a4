"""Issuer faults: down at start, down later, key rotation, forged-kid floods; and the gateway's
own signing-key rotation across replicas."""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import jwt
from pydantic import SecretStr

from codesuggest.gateway.settings import TrustedIssuer
from codesuggest.tokens import ManualClock, PrivateKey
from support.issuer import Issuer, instance_headers, wait_until

from .conftest import INSTANCE_ID, start_gateway


def protected(url: str, token: str) -> httpx.Response:
    headers = instance_headers(token, INSTANCE_ID) | {"X-Gitlab-Global-User-Id": "g"}
    return httpx.post(f"{url}/test/protected", headers=headers, timeout=10)


def ready(url: str) -> bool:
    return httpx.get(f"{url}/monitoring/ready", timeout=5).status_code == 200


def test_issuer_down_at_start_then_up(tmp_path) -> None:
    portal = Issuer().start()
    portal.stop()  # the port is now known, and nothing listens on it
    clock = ManualClock()
    gateway, _ = start_gateway(tmp_path, [TrustedIssuer(url=portal.url, kind="portal")], clock)
    try:
        response = httpx.get(f"{gateway.url}/monitoring/ready")
        assert response.status_code == 503
        assert response.json()["missing_issuers"] == [portal.url]
        # Neither accepted nor refused: 503 + Retry-After, never 401 (the edge tries another
        # replica, the instance and the client retry later).
        refused = protected(gateway.url, portal.instance_token(clock=clock))
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert "keys" in refused.json()["detail"]
        portal.start()
        wait_until(lambda: ready(gateway.url), what="ready after issuer comes up")
        assert protected(gateway.url, portal.instance_token(clock=clock)).status_code == 200
    finally:
        gateway.stop()
        portal.stop()


def test_issuer_down_later_cached_keys_keep_working(tmp_path) -> None:
    portal = Issuer().start()
    clock = ManualClock()
    gateway, _ = start_gateway(tmp_path, [TrustedIssuer(url=portal.url, kind="portal")], clock)
    try:
        wait_until(lambda: ready(gateway.url))
        portal.stop()
        # Past the refresh point: the background refresh fails, the last good keys stay.
        clock.advance(86400)
        for _ in range(20):
            token = portal.instance_token(clock=clock)
            assert protected(gateway.url, token).status_code == 200
        assert ready(gateway.url)
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'outcome="ok"' in metrics
    finally:
        gateway.stop()


def test_issuer_key_rotation_drops_no_request(tmp_path) -> None:
    portal = Issuer().start()
    clock = ManualClock()
    gateway, _ = start_gateway(tmp_path, [TrustedIssuer(url=portal.url, kind="portal")], clock)
    try:
        wait_until(lambda: ready(gateway.url))
        statuses = [
            protected(gateway.url, portal.instance_token(clock=clock)).status_code
            for _ in range(10)
        ]
        clock.advance(60)  # some time since the last fetch
        old = portal.signing
        portal.rotate()
        assert portal.signing.kid != old.kid
        statuses += [
            protected(gateway.url, portal.instance_token(clock=clock)).status_code
            for _ in range(10)
        ]
        # Tokens signed by the old key before the rotation are still live and still accepted.
        portal.signing = old
        statuses += [
            protected(gateway.url, portal.instance_token(clock=clock)).status_code for _ in range(5)
        ]
        assert statuses == [200] * 25
    finally:
        gateway.stop()
        portal.stop()


def test_forged_kid_flood_causes_few_fetches(tmp_path) -> None:
    portal = Issuer().start()
    clock = ManualClock()
    gateway, _ = start_gateway(tmp_path, [TrustedIssuer(url=portal.url, kind="portal")], clock)
    try:
        wait_until(lambda: ready(gateway.url))
        clock.advance(60)
        before = portal.jwks_fetches
        _, payload, signature = portal.instance_token(clock=clock).split(".")

        async def flood() -> list[int]:
            # 1000 requests share 8 connections: a busy machine may make some wait long.
            async with httpx.AsyncClient(
                base_url=gateway.url, limits=httpx.Limits(max_connections=8), timeout=120
            ) as client:

                async def one() -> int:
                    # A forged kid never gets as far as the signature check.
                    header = jwt.utils.base64url_encode(
                        json.dumps({"alg": "RS256", "kid": secrets.token_urlsafe(16)}).encode()
                    ).decode()
                    token = f"{header}.{payload}.{signature}"
                    headers = instance_headers(token, INSTANCE_ID)
                    return (await client.post("/test/protected", headers=headers)).status_code

                return await asyncio.gather(*(one() for _ in range(1000)))

        statuses = asyncio.run(flood())
        assert set(statuses) == {401}
        assert portal.jwks_fetches - before <= 2
    finally:
        gateway.stop()
        portal.stop()


def test_gateway_signing_key_rotation_across_replicas(tmp_path) -> None:
    """The documented procedure: publish the new key as validation key everywhere, then switch
    signing to it with the old one as validation key. At every step, a token minted by any live
    replica is accepted by every live replica."""
    portal = Issuer().start()
    clock = ManualClock()
    issuers = [TrustedIssuer(url=portal.url, kind="portal")]
    old, new = PrivateKey.generate(), PrivateKey.generate()

    def replica(name: str, sign: PrivateKey, validate: PrivateKey | None):  # type: ignore[no-untyped-def]
        server, _ = start_gateway(
            tmp_path / name,
            issuers,
            clock,
            signing_key=SecretStr(sign.to_pem()),
            validation_key=SecretStr(validate.to_pem()) if validate else None,
        )
        return server

    def mint(url: str) -> str:
        headers = instance_headers(portal.instance_token(clock=clock), INSTANCE_ID)
        headers["X-Gitlab-Global-User-Id"] = "g"
        response = httpx.post(f"{url}/v1/code/user_access_token", headers=headers)
        assert response.status_code == 200
        return response.json()["token"]

    failures = 0
    minted: list[str] = []

    def check(replicas) -> None:  # type: ignore[no-untyped-def]
        nonlocal failures
        for r in replicas:
            wait_until(lambda r=r: ready(r.url))
            minted.append(mint(r.url))
        for token in minted[-6:]:
            for r in replicas:
                user_headers = instance_headers(token, INSTANCE_ID) | {
                    "X-Gitlab-Global-User-Id": "g"
                }
                status = httpx.post(f"{r.url}/test/protected", headers=user_headers).status_code
                failures += status != 200

    a, b = replica("a", old, None), replica("b", old, None)
    check([a, b])
    for step in [(old, new), (new, old)]:  # step 1: publish new; step 2: sign with new
        for name, current in (("a", a), ("b", b)):
            other = b if current is a else a
            current.stop()
            check([other])  # the load balancer sends everything to the other replica
            fresh = replica(f"{name}-{step[0].kid[:6]}", *step)
            if name == "a":
                a = fresh
            else:
                b = fresh
            check([a, b])
    try:
        assert failures == 0
        assert jwt.get_unverified_header(mint(a.url))["kid"] == new.kid
    finally:
        a.stop()
        b.stop()
        portal.stop()
