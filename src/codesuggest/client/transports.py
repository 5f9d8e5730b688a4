"""The two ways to ask for a suggestion: straight to the gateway with the user token
(`POST {base_url}/v2/completions`), or through the instance with the PAT
(`POST {instance}/api/v4/code_suggestions/completions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from codesuggest.client.details import ConnectionDetails
from codesuggest.client.responses import error_message

DIRECT_PATH = "/v2/completions"
MONOLITH_PATH = "/api/v4/code_suggestions/completions"
DEFAULT_TIMEOUT = 5.0
RETRIED_STATUSES = frozenset({502, 503})
"""What the edge answers when a replica died or is not ready, before any byte of an answer:
nothing was served, so the completion is sent once more."""
CONNECTION_LOST = (
    httpx.ConnectError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
"""The connection failed or died before the answer's first byte. The pool drops that connection,
so the one retry goes out on another. Timeouts are not retried: a slow server stays slow."""


class PathFailed(Exception):
    """The path itself failed (network, timeout, 5xx): counts against the circuit breaker."""


class Unauthorized(Exception):
    """401: the credential was refused."""


class Refused(Exception):
    """The server answered but will not serve this request (403, 429, other 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Reply:
    body: dict[str, Any]
    seconds: float
    server_timing: dict[str, float]  # metric name -> duration in ms, from `Server-Timing`


def new_http_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """The one pooled client: keep-alive, HTTP/2 where the peer speaks it (TLS + ALPN)."""
    return httpx.AsyncClient(
        http2=True,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=60.0),
    )


def direct_headers(details: ConnectionDetails, client_version: str) -> dict[str, str]:
    headers = dict(details.headers)
    headers["Authorization"] = f"Bearer {details.token}"
    headers["X-Gitlab-Authentication-Type"] = "oidc"
    headers["X-Gitlab-Language-Server-Version"] = client_version
    headers["User-Agent"] = f"codesuggest-client/{client_version}"
    return headers


async def post_direct(
    http: httpx.AsyncClient,
    details: ConnectionDetails,
    payload: dict[str, Any],
    client_version: str,
) -> Reply:
    return await _post(
        http, details.base_url + DIRECT_PATH, direct_headers(details, client_version), payload
    )


async def post_monolith(
    http: httpx.AsyncClient,
    instance_url: str,
    token: str,
    payload: dict[str, Any],
    client_version: str,
) -> Reply:
    headers = {
        "PRIVATE-TOKEN": token,
        "X-Gitlab-Language-Server-Version": client_version,
        "User-Agent": f"codesuggest-client/{client_version}",
    }
    return await _post(http, instance_url.rstrip("/") + MONOLITH_PATH, headers, payload)


async def _post(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], payload: dict[str, Any]
) -> Reply:
    for attempt in (1, 2):
        try:
            response = await http.post(url, headers=headers, json=payload)
        except CONNECTION_LOST as exc:
            if attempt == 1:
                continue
            raise PathFailed(f"{type(exc).__name__} calling {url} (retried once)") from exc
        except httpx.HTTPError as exc:
            raise PathFailed(f"{type(exc).__name__} calling {url}") from exc
        if attempt == 1 and response.status_code in RETRIED_STATUSES:
            continue
        break
    seconds = response.elapsed.total_seconds()
    if response.status_code >= 500:
        raise PathFailed(_server_error(response, url))
    if response.status_code == 401:
        raise Unauthorized(error_message(response))
    if response.status_code >= 400:
        raise Refused(response.status_code, error_message(response))
    try:
        body = response.json()
    except ValueError as exc:
        raise PathFailed(f"unreadable body from {url}") from exc
    if not isinstance(body, dict):
        raise PathFailed(f"unexpected body from {url}")
    return Reply(body=body, seconds=seconds, server_timing=parse_server_timing(response))


def _server_error(response: httpx.Response, url: str) -> str:
    """The status and URL, and the server's own words when it answered JSON (not a proxy's
    HTML page)."""
    text = f"HTTP {response.status_code} from {url}"
    if response.headers.get("content-type", "").startswith("application/json"):
        text += f": {error_message(response)}"
    return text


def parse_server_timing(response: httpx.Response) -> dict[str, float]:
    """`Server-Timing: total;dur=12.5, model;dur=10` -> {"total": 12.5, "model": 10.0}."""
    timings: dict[str, float] = {}
    for header in response.headers.get_list("server-timing"):
        for metric in header.split(","):
            name, *params = (part.strip() for part in metric.split(";"))
            if not name:
                continue
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "dur":
                    try:
                        timings[name] = float(value.strip().strip('"'))
                    except ValueError:
                        pass
    return timings
