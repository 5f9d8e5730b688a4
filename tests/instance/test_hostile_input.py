"""Hostile input at the instance: each of these once made a 500; now each is a clear 4xx and
the instance keeps working (the settings an admin sends never break the hot path)."""

from __future__ import annotations

import json

import pytest

from instance.harness import Stack, stacks

stack = stacks("hostile")
ONE_STACK = pytest.mark.stacks(realm="self-managed", backend="sqlite")
SETTINGS = "/api/v4/application/settings"
COMPLETIONS = "/api/v4/code_suggestions/completions"


def _admin(stack: Stack) -> dict[str, str]:
    return {"PRIVATE-TOKEN": stack.user(admin_=True)}


def _user(stack: Stack) -> dict[str, str]:
    return {"PRIVATE-TOKEN": stack.user()}


@ONE_STACK
def test_deeply_nested_json_is_a_400_on_completions_and_settings(stack: Stack) -> None:
    raw = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
    json_type = {"Content-Type": "application/json"}
    for route, headers in ((COMPLETIONS, _user(stack)), (SETTINGS, _admin(stack))):
        method = stack.http.put if route == SETTINGS else stack.http.post
        response = method(route, content=raw, headers=headers | json_type)
        assert response.status_code == 400, (route, response.text)
        assert "nested more than" in response.json()["error"]


@ONE_STACK
@pytest.mark.parametrize("number", ["NaN", "1e999"])
def test_a_non_finite_number_on_the_monolith_path_is_a_400(stack: Stack, number: str) -> None:
    raw = json.dumps({"project_id": 0}).replace("0", number)
    response = stack.http.post(
        COMPLETIONS, content=raw, headers=_user(stack) | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert number.lstrip("1") in response.json()["error"] or "too large" in response.text


@ONE_STACK
def test_an_intent_that_is_not_a_string_is_a_400(stack: Stack) -> None:
    response = stack.http.post(COMPLETIONS, json={"intent": ["completion"]}, headers=_user(stack))
    assert response.status_code == 400
    assert response.json()["error"] == "intent does not have a valid value"


@ONE_STACK
def test_a_non_ascii_request_id_is_replaced_not_passed_on(stack: Stack) -> None:
    from instance.test_gateway_path import COMPLETION

    headers = _user(stack) | {"X-Request-ID": "r\u00e9quest".encode("latin-1")}
    response = stack.http.post(COMPLETIONS, json=COMPLETION, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"].isascii()
    assert "quest" not in response.headers["x-request-id"]


@ONE_STACK
def test_settings_as_a_form_are_accepted_and_other_bodies_get_415(stack: Stack) -> None:
    admin = _admin(stack)
    form = stack.http.put(SETTINGS, data={"version": "17.1.0"}, headers=admin)
    assert form.status_code == 200, form.text
    assert form.json()["version"] == "17.1.0"
    multipart = stack.http.put(SETTINGS, files={"version": (None, "17.2.0")}, headers=admin)
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["version"] == "17.2.0"
    text = stack.http.put(
        SETTINGS, content="version=1", headers=admin | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    assert "JSON" in text.json()["error"]


@ONE_STACK
@pytest.mark.parametrize(
    "bad", ["h\u00e9\u0000.example", "a\u0000b", "-x.example", "a b", "x" * 300]
)
def test_a_bad_host_name_is_refused_on_write(stack: Stack, bad: str) -> None:
    response = stack.http.put(SETTINGS, json={"host_name": bad}, headers=_admin(stack))
    assert response.status_code == 400, response.text
    assert "host_name" in response.json()["error"]
    assert stack.direct_access(stack.user()).status_code == 201


@ONE_STACK
def test_an_international_host_name_is_stored_as_punycode(stack: Stack) -> None:
    admin = _admin(stack)
    try:
        response = stack.http.put(SETTINGS, json={"host_name": "h\u00e9.example"}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["host_name"] == "xn--h-bga.example"
        assert stack.direct_access(stack.user()).status_code == 201
    finally:
        stack.http.put(SETTINGS, json={"host_name": "127.0.0.1"}, headers=admin)


@ONE_STACK
@pytest.mark.parametrize(
    "url", ["http://evil.example", "ftp://127.0.0.1:1", "http://u:p@127.0.0.1:1", "not a url"]
)
@pytest.mark.parametrize("key", ["gateway_url", "edge_url"])
def test_the_api_cannot_send_the_instance_token_elsewhere(stack: Stack, key: str, url: str) -> None:
    before = stack.http.get(SETTINGS, headers=_admin(stack)).json()[key]
    response = stack.http.put(SETTINGS, json={key: url}, headers=_admin(stack))
    assert response.status_code in (400, 403), response.text
    assert key in response.json()["error"]
    assert stack.http.get(SETTINGS, headers=_admin(stack)).json()[key] == before


@ONE_STACK
def test_the_deploy_time_gateway_url_may_be_set_again(stack: Stack) -> None:
    admin = _admin(stack)
    gateway = stack.settings.gateway_url
    response = stack.http.put(SETTINGS, json={"edge_url": gateway + "/"}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["edge_url"] == gateway
    assert stack.http.put(SETTINGS, json={"edge_url": ""}, headers=admin).json()["edge_url"] is None
