"""The key rotation procedure: create (publish) -> rotate (switch signing) -> trim (drop old)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from codesuggest.portal.keyring import KeyringError
from codesuggest.tokens import RemoteKeySet, Verifier
from portal.helpers import Portal, instance_headers

THREE_DAYS = 3 * 24 * 3600
TRIM_LEEWAY = 5 * 60


def kid_of(token: str) -> str:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["kid"]


def iat_of(token: str) -> int:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"]


def jwks_kids(portal: Portal) -> set[str]:
    return {k["kid"] for k in portal.http.get("/oauth/discovery/keys").json()["keys"]}


async def verify_all(portal: Portal, tokens: list[str]) -> list[dict]:
    """Verify with a fresh key set fetched from the live portal, as a new gateway would."""
    async with httpx.AsyncClient() as http:
        keys = RemoteKeySet(portal.url, http, clock=portal.clock)
        assert await keys.refresh()
        verifier = Verifier([keys], audience="gitlab-ai-gateway", clock=portal.clock)
        return [await verifier.verify(t) for t in tokens]


async def test_rotation_procedure(portal: Portal) -> None:
    key = portal.license_with_addon()

    def token() -> str:
        body = portal.access(key, instance_headers("rotating-instance")).json()
        return body["data"]["cloudConnectorAccess"]["serviceToken"]["token"]

    first = token()
    old_kid = kid_of(first)
    assert jwks_kids(portal) == {old_kid}
    with pytest.raises(KeyringError, match="no published key to rotate to"):
        portal.admin.rotate_keys()

    # 1. create: the new key is published, the old one keeps signing.
    new_kid = portal.admin.create_key()
    assert new_kid != old_kid
    assert jwks_kids(portal) == {old_kid, new_kid}
    portal.clock.advance(3600)
    second = token()
    assert kid_of(second) == old_kid
    await verify_all(portal, [first, second])

    # 2. rotate: new tokens carry the new kid; old tokens still verify.
    portal.clock.advance(24 * 3600)
    assert portal.admin.rotate_keys() == (new_kid, old_kid)
    third = token()
    assert kid_of(third) == new_kid
    assert jwks_kids(portal) == {old_kid, new_kid}
    await verify_all(portal, [first, second, third])
    states = {k.kid: k.state for k in portal.admin.list_keys()}
    assert states == {old_kid: "retired", new_kid: "signing"}

    # 3. trim: refused while `second` (the last token of the old key) may be alive.
    second_exp = iat_of(second) + THREE_DAYS
    with pytest.raises(KeyringError, match=f"refusing to trim.*{old_kid}"):
        portal.admin.trim_keys()
    portal.clock.set(second_exp + TRIM_LEEWAY - 1)
    with pytest.raises(KeyringError, match="refusing to trim"):
        portal.admin.trim_keys()
    assert jwks_kids(portal) == {old_kid, new_kid}

    # ... allowed once no token of the old key can be accepted any more.
    portal.clock.set(second_exp + TRIM_LEEWAY)
    result = portal.admin.trim_keys()
    assert result.removed == [old_kid]
    assert result.still_live == []
    assert jwks_kids(portal) == {new_kid}
    assert [k.kid for k in portal.admin.list_keys()] == [new_kid]
    assert kid_of(token()) == new_kid


def test_unused_key_is_trimmed_at_once_and_force_trims_live_ones(portal: Portal) -> None:
    portal.access(portal.license_with_addon())  # the signing key now has a live token
    [live] = [k.kid for k in portal.admin.list_keys() if k.state == "signing"]
    unused = portal.admin.create_key()
    assert portal.admin.rotate_keys() == (unused, live)
    newest = portal.admin.create_key()
    assert portal.admin.rotate_keys() == (newest, unused)  # `unused` never signed a token

    result = portal.admin.trim_keys()
    assert result.removed == [unused]
    assert [k.kid for k in result.still_live] == [live]
    assert jwks_kids(portal) == {live, newest}

    assert portal.admin.trim_keys(force=True).removed == [live]
    assert jwks_kids(portal) == {newest}
