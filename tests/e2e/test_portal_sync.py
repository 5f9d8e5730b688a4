"""Portal -> instance sync -> gateway: the real portal's token lets the gateway mint user tokens.

All three parts are real: the portal and the gateway on loopback HTTP, the instance's sync job
against its own SQLite database. One clock drives them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from codesuggest.gateway.app import create_app as create_gateway
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from codesuggest.instance.sync import SyncResult, newest_live_token, sync_once
from codesuggest.tokens import ManualClock
from portal.helpers import Portal, start_portal
from support.issuer import wait_until
from support.servers import ServerThread

INSTANCE_ID = "0b6f3b1e-8f0c-4a52-9a57-3f1f2c6d9e10"


@dataclass
class Stack:
    portal: Portal
    portal_server: ServerThread
    license_id: int
    instance: InstanceSettings
    store: Store
    gateway: ServerThread
    clock: ManualClock


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("portal-sync")
    portal, portal_server = start_portal(f"sqlite:///{root / 'portal.db'}", root / "portal")
    license = portal.admin.create_license(customer="e2e")
    portal.admin.add_addon(license.id)
    instance = InstanceSettings(
        data_dir=root / "instance",
        database_url=f"sqlite:///{root / 'instance.db'}",
        secret="e2e-instance-secret-0123456789abcdef",
        portal_url=portal.url,
        license_key=license.key,
        host_name="gitlab.e2e.test",
        sync_enabled=False,
    )
    store = open_store(instance)
    with store.session() as session:
        application_settings(session).instance_uuid = INSTANCE_ID
    gateway_settings = GatewaySettings(
        trusted_issuers=[TrustedIssuer(url=portal.url, kind="portal")],
        data_dir=root / "gateway",
        jwks_retry_max=0.2,
    )
    gateway = ServerThread(create_gateway(gateway_settings, clock=portal.clock)).start()
    wait_until(
        lambda: httpx.get(f"{gateway.url}/monitoring/ready").status_code == 200,
        what="gateway loaded the portal's keys",
    )
    try:
        yield Stack(portal, portal_server, license.id, instance, store, gateway, portal.clock)
    finally:
        gateway.stop()
        store.dispose()
        portal.http.close()
        portal_server.stop()


async def sync(stack: Stack, force: bool = False) -> SyncResult:
    async with httpx.AsyncClient() as http:
        return await sync_once(stack.store, stack.instance, http, stack.clock, force=force)


def stored_token(stack: Stack) -> str | None:
    with stack.store.session() as session:
        return newest_live_token(session, stack.clock.now())


def mint_user_token(stack: Stack, instance_token: str) -> httpx.Response:
    return httpx.post(
        f"{stack.gateway.url}/v1/code/user_access_token",
        headers={
            "Authorization": f"Bearer {instance_token}",
            "X-Gitlab-Authentication-Type": "oidc",
            "X-Gitlab-Global-User-Id": "global-user-1",
            "X-Gitlab-Instance-Id": INSTANCE_ID,
            "X-Gitlab-Realm": "self-managed",
        },
    )


async def test_synced_portal_token_mints_user_tokens_at_the_gateway(stack: Stack) -> None:
    result = await sync(stack)
    assert result.outcome == "stored", result.reason
    assert result.expires_at is not None
    assert int(result.expires_at.timestamp()) == int(stack.clock.now()) + 3 * 24 * 3600
    token = stored_token(stack)
    assert token is not None

    response = mint_user_token(stack, token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_at"] == int(stack.clock.now()) + 3600

    [license] = stack.portal.admin.list_licenses()
    [seen] = license.instances
    assert (seen.instance_id, seen.host_name) == (INSTANCE_ID, "gitlab.e2e.test")


async def test_tokens_survive_a_key_rotation(stack: Stack) -> None:
    assert (await sync(stack, force=True)).outcome == "stored"
    old_token = stored_token(stack)
    stack.portal.admin.create_key()
    stack.portal.admin.rotate_keys()
    assert mint_user_token(stack, old_token).status_code == 200  # retired key still published
    assert (await sync(stack, force=True)).outcome == "stored"
    new_token = stored_token(stack)
    assert new_token != old_token
    # The gateway has never seen the new kid: once its refetch rate limit (30 s) allows, it
    # refetches the portal's JWKS on the unknown kid and accepts the token.
    stack.clock.advance(31)
    assert mint_user_token(stack, new_token).status_code == 200


async def test_portal_down_for_two_days_then_back(stack: Stack) -> None:
    """A portal outage changes nothing stored: the 3-day token carries the instance through two
    days of failed syncs, the gateway keeps minting with it, and the first sync after the
    portal returns replaces it."""
    assert (await sync(stack, force=True)).outcome == "stored"
    before = stored_token(stack)
    stack.portal_server.stop()
    try:
        for _ in range(2):
            stack.clock.advance(25 * 3600)  # under 2 days left: every sync calls the portal
            result = await sync(stack)
            assert result.outcome == "failed"
            assert "portal" in (result.reason or "").lower(), result.reason
            assert stored_token(stack) == before
            assert mint_user_token(stack, before).status_code == 200
    finally:
        stack.portal_server.start()
    result = await sync(stack)
    assert result.outcome == "stored", result.reason
    after = stored_token(stack)
    assert after is not None and after != before
    assert mint_user_token(stack, after).status_code == 200


async def test_removed_addon_clears_and_revocation_fails_the_sync(stack: Stack) -> None:
    stack.portal.admin.remove_addon(stack.license_id)
    result = await sync(stack, force=True)
    assert result.outcome == "cleared"
    assert stored_token(stack) is None

    stack.portal.admin.revoke_license(stack.license_id)
    result = await sync(stack, force=True)
    assert result.outcome == "failed"
    assert result.reason == "portal refused: License has been revoked"
