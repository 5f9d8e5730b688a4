"""Every cloudConnectorAccess outcome, with the exact messages of docs/portal.md."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from codesuggest.portal.models import License
from portal.helpers import Portal, instance_headers

THREE_DAYS = 3 * 24 * 3600


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def refused(portal: Portal, key: str, headers: dict | None = None) -> tuple[str, str]:
    response = portal.access(key, headers)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"cloudConnectorAccess": None}
    [error] = body["errors"]
    assert error["path"] == ["cloudConnectorAccess"]
    return error["message"], error["extensions"]["code"]


def instances_of(portal: Portal, license_id: int) -> list:
    [license] = [lic for lic in portal.admin.list_licenses() if lic.id == license_id]
    return license.instances


def test_valid_cloud_license_with_addon_gets_a_token(portal: Portal) -> None:
    created = portal.admin.create_license(customer="acme")
    addon = portal.admin.add_addon(created.id, seats=25)
    response = portal.access(created.key)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    access = body["data"]["cloudConnectorAccess"]
    now = int(portal.clock.now())
    token = access["serviceToken"]["token"]
    assert claims_of(token)["exp"] == now + THREE_DAYS
    expires_at = datetime.fromisoformat(access["serviceToken"]["expiresAt"])
    assert expires_at == datetime.fromtimestamp(now + THREE_DAYS, UTC)
    assert access["availableServices"] == [
        {
            "name": "code_suggestions",
            "serviceStartTime": addon.starts_at.isoformat(),
            "bundledWith": ["code_suggestions"],
        }
    ]
    [service] = access["catalog"]["services"]
    assert service["name"] == "code_suggestions"
    assert service["unit_primitives"] == ["complete_code", "generate_code"]
    assert service["backend"] == "gitlab-ai-gateway"
    assert service["seats"] == 25


def test_license_without_addon_gets_null_token(portal: Portal) -> None:
    created = portal.admin.create_license()
    body = portal.access(created.key).json()
    assert "errors" not in body
    assert body["data"]["cloudConnectorAccess"]["serviceToken"] is None
    assert body["data"]["cloudConnectorAccess"]["availableServices"] == []


def test_removed_addon_means_null_token(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    assert portal.access(created.key).json()["data"]["cloudConnectorAccess"]["serviceToken"]
    assert portal.admin.remove_addon(created.id) == 1
    body = portal.access(created.key).json()
    assert body["data"]["cloudConnectorAccess"]["serviceToken"] is None


def test_ended_addon_means_null_token_and_token_never_outlives_addon(portal: Portal) -> None:
    created = portal.admin.create_license()
    addon = portal.admin.add_addon(created.id, days=1)
    token = portal.access(created.key).json()["data"]["cloudConnectorAccess"]["serviceToken"]
    assert claims_of(token["token"])["exp"] == int(addon.ends_at.timestamp())
    portal.clock.advance(24 * 3600 + 1)
    body = portal.access(created.key).json()
    assert "errors" not in body
    assert body["data"]["cloudConnectorAccess"]["serviceToken"] is None


def test_unknown_license(portal: Portal) -> None:
    assert refused(portal, "cslk_" + "x" * 64) == ("License key not found", "LICENSE_NOT_FOUND")


def test_revoked_license(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    portal.admin.revoke_license(created.id)
    assert refused(portal, created.key) == ("License has been revoked", "LICENSE_REVOKED")


def test_non_cloud_license(portal: Portal) -> None:
    key = portal.license_with_addon(cloud=False)
    assert refused(portal, key) == ("License is not a cloud license", "LICENSE_NOT_CLOUD")


def test_trial_license(portal: Portal) -> None:
    key = portal.license_with_addon(trial=True)
    assert refused(portal, key) == (
        "Trial licenses cannot use Cloud Connector",
        "LICENSE_TRIAL",
    )


def test_license_not_started_yet(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    with portal.admin.sessions.begin() as session:
        session.get(License, created.id).starts_at = created.starts_at + timedelta(days=2)
    assert refused(portal, created.key) == ("License is not active yet", "LICENSE_NOT_STARTED")


def test_expired_license_works_in_grace_then_is_refused(portal: Portal) -> None:
    created = portal.admin.create_license(days=2, grace_days=1)
    portal.admin.add_addon(created.id, days=30)
    hard_end = created.expires_at + timedelta(days=1)
    portal.clock.advance(2 * 24 * 3600 + 3600)  # expired an hour ago: in the grace period
    token = portal.access(created.key).json()["data"]["cloudConnectorAccess"]["serviceToken"]
    assert claims_of(token["token"])["exp"] == int(hard_end.timestamp())
    portal.clock.advance(24 * 3600)  # past the grace period
    assert refused(portal, created.key) == ("License has expired", "LICENSE_EXPIRED")


def test_missing_instance_id_header(portal: Portal) -> None:
    key = portal.license_with_addon()
    headers = instance_headers()
    del headers["x-gitlab-instance-id"]
    assert refused(portal, key, headers) == (
        "Missing required header: x-gitlab-instance-id",
        "MISSING_INSTANCE_ID",
    )


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "-leading-dash", "a/b"])
def test_invalid_instance_id_header(portal: Portal, bad: str) -> None:
    key = portal.license_with_addon()
    assert refused(portal, key, instance_headers(bad)) == (
        "Invalid x-gitlab-instance-id header",
        "INVALID_INSTANCE_ID",
    )


def test_instance_is_recorded_and_last_seen_updated(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    instance_id = "6f1c7e2a-3b7e-4bb1-9d55-7b3f1f3c0a11"
    first = datetime.fromtimestamp(portal.clock.now(), UTC)
    portal.access(created.key, instance_headers(instance_id, "gl.acme.test", "17.1.0"))
    portal.clock.advance(3600)
    portal.access(created.key, instance_headers(instance_id, "gl2.acme.test", "17.2.0"))
    [seen] = instances_of(portal, created.id)
    assert seen.instance_id == instance_id
    assert (seen.host_name, seen.version) == ("gl2.acme.test", "17.2.0")
    assert seen.first_seen_at == first
    assert seen.last_seen_at == first + timedelta(hours=1)


def test_license_without_addon_still_records_instance(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.access(created.key, instance_headers("inst-1"))
    assert [i.instance_id for i in instances_of(portal, created.id)] == ["inst-1"]


def test_refused_call_records_nothing(portal: Portal) -> None:
    created = portal.admin.create_license(trial=True)
    portal.admin.add_addon(created.id)
    refused(portal, created.key, instance_headers("inst-trial"))
    assert instances_of(portal, created.id) == []
