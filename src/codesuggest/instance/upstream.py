"""Calls from the instance to the gateway: minting user tokens and the monolith completion path."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from codesuggest.common.logs import get_logger
from codesuggest.instance import errors
from codesuggest.instance.access import SeatedUser

log = get_logger("codesuggest.instance.upstream")
PASSED_THROUGH = {401, 402, 403}


def gateway_headers(
    caller: SeatedUser, instance_token: str, request_id: str | None
) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {instance_token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Instance-Id": caller.info.instance_uuid,
        "X-Gitlab-Realm": caller.info.realm,
        "X-Gitlab-Global-User-Id": caller.global_user_id,
        "X-Gitlab-Host-Name": caller.info.host_name,
        "X-Gitlab-Version": caller.info.version,
        "X-Gitlab-Feature-Enablement-Type": "duo_pro",
    }
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


CLIENT_HEADERS = ("User-Agent", "X-Gitlab-Language-Server-Version")
"""Passed on from the IDE on the monolith path, so the gateway records the same client on
both paths."""


def client_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    return {name: incoming[name] for name in CLIENT_HEADERS if name in incoming}


def _unreachable(exc: Exception, what: str) -> errors.InstanceError:
    log.warning("gateway call failed", call=what, error=type(exc).__name__)
    return errors.unavailable(
        "The AI gateway is unreachable", f"gateway_unreachable: {type(exc).__name__}"
    )


async def mint_user_token(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    budget: float,
) -> tuple[str, int]:
    """POST the gateway's user_access_token route within `budget` seconds."""
    try:
        async with asyncio.timeout(budget):
            response = await http.post(url, headers=headers, timeout=budget)
    except TimeoutError as exc:
        log.warning("gateway call timed out", call="user_access_token", budget=budget)
        raise errors.unavailable(
            f"The AI gateway did not answer within {budget:g} s", "gateway_timeout"
        ) from exc
    except httpx.TimeoutException as exc:
        raise errors.unavailable(
            f"The AI gateway did not answer within {budget:g} s", "gateway_timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise _unreachable(exc, "user_access_token") from exc
    if response.status_code in PASSED_THROUGH:
        raise errors.GatewayRefused(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
        )
    if response.status_code != 200:
        log.warning("gateway refused to mint", status=response.status_code)
        # 429/503 from the edge or the gateway: the client waits as long as they asked.
        raise errors.unavailable(
            f"The AI gateway failed to issue a token (HTTP {response.status_code})",
            "gateway_error",
            response.headers.get("retry-after"),
        )
    try:
        body: Any = response.json()
        token, expires_at = body["token"], int(body["expires_at"])
        if not isinstance(token, str) or not token:
            raise ValueError("empty token")
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.unavailable(
            "The AI gateway answered with an unreadable token", "gateway_bad_response"
        ) from exc
    return token, expires_at


_PASSED_HEADERS = ("retry-after", "server-timing")


async def forward_completion(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    budget: float,
) -> Response:
    """Send the request body unchanged and return the gateway's answer unchanged: status, JSON
    body, or an event stream relayed chunk by chunk."""
    request = http.build_request(
        "POST",
        url,
        content=body,
        headers={**headers, "Content-Type": "application/json"},
        timeout=httpx.Timeout(budget, connect=min(budget, 3.0)),
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise errors.unavailable(
            f"The AI gateway did not answer within {budget:g} s", "gateway_timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise _unreachable(exc, "completions") from exc
    content_type = response.headers.get("content-type", "application/json")
    if content_type.startswith("text/event-stream"):
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            media_type=content_type,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(response.aclose),
        )
    try:
        content = await response.aread()
    except httpx.HTTPError as exc:
        raise _unreachable(exc, "completions") from exc
    finally:
        await response.aclose()
    # Retry-After for clients that back off; Server-Timing so a slow answer still says where
    # its time went (the gateway's stages, on the monolith path too).
    extra = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_HEADERS}
    return Response(
        content, status_code=response.status_code, media_type=content_type, headers=extra
    )
