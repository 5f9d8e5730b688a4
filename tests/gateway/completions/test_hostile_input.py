"""Hostile request bodies at the completion routes: each gets a clear 4xx, never a 500."""

from __future__ import annotations

import json

import pytest

from gateway.completions.routes_env import completion_body

ROUTES = ["/v2/code/completions", "/ai/v2/code/completions", "/v2/code/generations"]


def _headers(gw, route: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    headers = gw.instance_headers() if "generations" in route else gw.user_headers()
    return headers | {"Content-Type": "application/json"}


@pytest.mark.parametrize("route", ROUTES)
def test_invalid_utf8_in_the_body_is_a_400(gw, route: str) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps(completion_body()).encode().replace(b"def add", b"def \xff\xfe")
    with gw.client() as c:
        response = c.post(route, content=raw, headers=_headers(gw, route))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert "UTF-8" in error["msg"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("route", ROUTES[:1] + ROUTES[2:])
def test_a_non_finite_number_is_refused(gw, route: str, number: str) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps(completion_body(project_id=0)).replace(
        '"project_id": 0', f'"project_id": {number}'
    )
    with gw.client() as c:
        response = c.post(route, content=raw, headers=_headers(gw, route))
    assert response.status_code == 422, response.text
    assert gw.model.requests == []


def test_deep_nesting_is_a_400(gw) -> None:  # type: ignore[no-untyped-def]
    raw = '{"current_file": ' + "[" * 3000 + "]" * 3000 + "}"
    with gw.client() as c:
        response = c.post(ROUTES[0], content=raw, headers=_headers(gw, ROUTES[0]))
    assert response.status_code == 422, response.text
    assert "nested more than" in response.json()["detail"][0]["msg"]


def test_nan_in_a_field_the_model_ignores_is_refused_too(gw) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps(completion_body(extra=1)).replace('"extra": 1', '"extra": NaN')
    with gw.client() as c:
        response = c.post(ROUTES[0], content=raw, headers=_headers(gw, ROUTES[0]))
    assert response.status_code == 422, response.text
    assert "NaN" in response.json()["detail"][0]["msg"]
    assert gw.model.requests == []


def test_a_20_mb_body_with_a_valid_token_is_refused_at_the_edge_route(gw) -> None:  # type: ignore[no-untyped-def]
    with gw.client() as c:
        response = c.post(
            "/ai/v2/code/completions", content=b"x" * (20 * 1024 * 1024), headers=_headers(gw, "")
        )
    assert response.status_code == 413
