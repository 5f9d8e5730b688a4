"""Hostile or broken requests get a 4xx or a GraphQL error, never a 500, and write nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from codesuggest.portal.models import AddonPurchase, Customer, License, LicenseInstance, SigningKey
from portal.helpers import ACCESS_QUERY, Portal, instance_headers

TABLES = (Customer, License, AddonPurchase, LicenseInstance, SigningKey)


def snapshot(portal: Portal) -> dict[str, object]:
    with portal.admin.sessions.begin() as session:
        counts = {
            t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in TABLES
        }
        seen = session.execute(
            select(LicenseInstance.instance_id, LicenseInstance.last_seen_at).order_by(
                LicenseInstance.id
            )
        ).all()
        keys = session.execute(select(SigningKey.kid, SigningKey.tokens_valid_until)).all()
    return {"counts": counts, "seen": seen, "keys": sorted(keys)}


@pytest.fixture
def unchanged(portal: Portal) -> Iterator[None]:
    """Asserts the test left the database exactly as it found it."""
    portal.license_with_addon()  # so there is something that could be written to
    before = snapshot(portal)
    yield
    assert snapshot(portal) == before


def only_error(response) -> str:  # type: ignore[no-untyped-def]
    body = response.json()
    [error] = body["errors"]
    return error["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"query": ', "The request body is not valid JSON: Expecting value"),
        (b"\xff\xfe\x00garbage", "The request body is not valid UTF-8"),
        (b'{"query": "{ a }", "variables": {"x": NaN}}', "The request body contains NaN"),
        (b'{"query": "{ a }", "variables": ' + b"[" * 3000 + b"]" * 3000 + b"}", "The request"),
        (b"[1, 2, 3]", "Request body must be a JSON object"),
        (b'"just a string"', "Request body must be a JSON object"),
        (b"{}", "'query' must be a non-empty string"),
        (b'{"query": 42}', "'query' must be a non-empty string"),
        (b'{"query": "{ __typename }", "variables": [1]}', "'variables' must be an object"),
        (b'{"query": "{ __typename }", "operationName": 7}', "'operationName' must be a string"),
        (b'{"query": "{ __typename }", "sneaky": 1}', "Unknown request member(s): sneaky"),
    ],
)
def test_unparseable_requests_get_400_json(
    portal: Portal, unchanged: None, body: bytes, message: str
) -> None:
    response = portal.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert only_error(response).startswith(message)


def test_a_body_that_is_not_json_gets_415(portal: Portal, unchanged: None) -> None:
    response = portal.http.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert only_error(response) == "Send the request as application/json"


def test_body_over_the_cap_gets_413_json(portal: Portal, unchanged: None) -> None:
    response = portal.access("k" * 100_000)
    assert response.status_code == 413
    assert only_error(response) == "Request body is larger than 65536 bytes"


def test_body_over_every_servers_cap_is_refused_before_it_is_read(
    portal: Portal, unchanged: None
) -> None:
    response = portal.access("k" * 2 * 1024 * 1024)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body is larger than 1048576 bytes"}


def test_long_license_key_under_the_cap_is_malformed(portal: Portal, unchanged: None) -> None:
    response = portal.access("k" * 60_000)
    assert response.status_code == 200
    assert only_error(response) == "License key is malformed"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("' OR '1'='1", "License key is malformed"),
        ("x';DROP/**/TABLE/**/licenses;--", "License key not found"),
        ("%' UNION SELECT key_hash FROM licenses --", "License key is malformed"),
        ("", "License key is malformed"),
        ("ключ", "License key is malformed"),
        ("key\x00with-nul", "License key is malformed"),
    ],
)
def test_hostile_license_keys(portal: Portal, unchanged: None, key: str, message: str) -> None:
    response = portal.access(key)
    assert response.status_code == 200
    assert only_error(response) == message


def test_unknown_field_is_a_graphql_error(portal: Portal, unchanged: None) -> None:
    query = ACCESS_QUERY.replace("catalog", "catalog licenseOwner")
    response = portal.http.post(
        "/graphql",
        json={"query": query, "variables": {"licenseKey": "k", "gitlabVersion": "17"}},
        headers=instance_headers(),
    )
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert only_error(response) == (
        "Cannot query field 'licenseOwner' on type 'CloudConnectorAccess'."
    )


def test_missing_variable_is_a_graphql_error(portal: Portal, unchanged: None) -> None:
    response = portal.http.post(
        "/graphql",
        json={"query": ACCESS_QUERY, "variables": {"gitlabVersion": "17"}},
        headers=instance_headers(),
    )
    assert response.status_code == 200
    assert only_error(response).startswith("Variable '$licenseKey' has invalid value")


def test_wrong_variable_type_is_a_graphql_error(portal: Portal, unchanged: None) -> None:
    response = portal.http.post(
        "/graphql",
        json={"query": ACCESS_QUERY, "variables": {"licenseKey": {"$ne": 1}, "gitlabVersion": "1"}},
        headers=instance_headers(),
    )
    assert response.status_code == 200
    assert "licenseKey" in only_error(response)


def test_syntax_error_is_a_graphql_error(portal: Portal, unchanged: None) -> None:
    response = portal.http.post("/graphql", json={"query": "query { cloudConnectorAccess("})
    assert response.status_code == 200
    assert only_error(response).startswith("Syntax Error")


def test_many_aliases_are_refused(portal: Portal) -> None:
    key = portal.license_with_addon()
    before = snapshot(portal)
    fields = " ".join(
        f'a{i}: cloudConnectorAccess(licenseKey: "{key}", gitlabVersion: "17") {{ catalog }}'
        for i in range(50)
    )
    response = portal.http.post(
        "/graphql", json={"query": f"{{ {fields} }}"}, headers=instance_headers()
    )
    assert response.status_code == 200
    assert "aliases" in only_error(response)
    assert snapshot(portal) == before


def test_oversized_headers_are_refused(portal: Portal) -> None:
    key = portal.license_with_addon()
    before = snapshot(portal)
    response = portal.access(key, instance_headers(host="h" * 300))
    assert only_error(response) == "Invalid x-gitlab-host-name header"
    response = portal.access(key, instance_headers(version="1" * 65))
    assert only_error(response) == "Invalid GitLab version"
    assert snapshot(portal) == before


def test_get_is_not_allowed(portal: Portal) -> None:
    response = portal.http.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
