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


@pytest.mark.parametrize("path", ["/ai/metrics", "/ai/metrics/"])
def test_the_built_in_edge_keeps_metrics_internal(gw, path: str) -> None:  # type: ignore[no-untyped-def]
    with gw.client() as c:
        assert c.get("/metrics").status_code == 200  # scraped on the replica itself
        response = c.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/ai%2fv2%2fcode%2fcompletions",
        b"/ai/v2%2Fcode/completions",
        b"/auth%2fv1/code/user_access_token",
    ],
)
def test_the_built_in_edge_refuses_encoded_slashes(gw, raw_path: bytes) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.create_connection(("127.0.0.1", gw.gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST "
            + raw_path
            + b" HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        )
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b"encoded slash" in response
