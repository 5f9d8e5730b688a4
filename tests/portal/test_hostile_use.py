"""The portal under hostile use: a license serves one instance, calls are limited per license,
GraphQL introspection is off unless enabled, and the depth limit counts introspection too."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import get_introspection_query

from portal.helpers import Portal, instance_headers, start_portal

INTROSPECTION = (
    "{ __schema { types { fields { type { " + "ofType { " * 12 + "name" + " }" * 16 + " }"
)


def test_a_license_binds_to_the_instance_of_its_first_sync(portal: Portal) -> None:
    key = portal.license_with_addon()
    first, other = instance_headers(), instance_headers()
    assert portal.access(key, first).json()["data"]["cloudConnectorAccess"]["serviceToken"]
    assert portal.access(key, first).json()["data"]["cloudConnectorAccess"]["serviceToken"]
    refused = portal.access(key, other).json()
    assert refused["data"]["cloudConnectorAccess"] is None
    assert refused["errors"][0]["extensions"]["code"] == "LICENSE_BOUND"


def test_a_rebind_is_an_explicit_admin_action(portal: Portal) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    old, new = instance_headers(), instance_headers()
    assert "errors" not in portal.access(created.key, old).json()
    portal.admin.rebind_license(created.id, new["x-gitlab-instance-id"])
    assert portal.access(created.key, old).json()["errors"][0]["extensions"]["code"] == (
        "LICENSE_BOUND"
    )
    assert "errors" not in portal.access(created.key, new).json()
    portal.admin.rebind_license(created.id)  # to whichever instance syncs next
    assert "errors" not in portal.access(created.key, old).json()


@pytest.fixture(scope="module")
def strict_portal(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("strict-portal")
    portal, server = start_portal(f"sqlite:///{tmp / 'portal.db'}", tmp, access_per_hour=3)
    yield portal
    portal.http.close()
    server.stop()


def test_cloud_connector_access_is_rate_limited_per_license(strict_portal: Portal) -> None:
    key, other_key = strict_portal.license_with_addon(), strict_portal.license_with_addon()
    headers = instance_headers()
    for _ in range(3):
        assert "errors" not in strict_portal.access(key, headers).json()
    refused = strict_portal.access(key, headers).json()
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "errors" not in strict_portal.access(other_key, instance_headers()).json()


def test_introspection_is_off_by_default(portal: Portal) -> None:
    response = portal.http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert response.status_code == 200
    assert "introspection" in response.json()["errors"][0]["message"].lower()
    assert "data" not in response.json() or response.json()["data"] is None


def test_introspection_when_enabled_is_depth_limited(tmp_path: Path) -> None:
    portal, server = start_portal(
        f"sqlite:///{tmp_path / 'portal.db'}", tmp_path, graphql_introspection=True
    )
    try:
        shallow = portal.http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        assert shallow.json()["data"]["__schema"]["types"]
        standard = portal.http.post("/graphql", json={"query": get_introspection_query()})
        assert "errors" not in standard.json()
        deep = portal.http.post("/graphql", json={"query": INTROSPECTION}).json()
        assert "exceeds maximum operation depth of 15" in deep["errors"][0]["message"]
    finally:
        portal.http.close()
        server.stop()


def test_deep_json_without_auth_is_a_400(portal: Portal) -> None:
    body = b'{"query": "{ a }", "variables": {"v": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    response = portal.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested more than" in response.json()["errors"][0]["message"]
