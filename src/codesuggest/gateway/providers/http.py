"""What the HTTP providers share: one pooled client each, and upstream failures mapped to ours."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from codesuggest.gateway.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)


def pooled_client(
    base_url: str, headers: dict[str, str], timeout: float, max_connections: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


def error_message(response: httpx.Response) -> str:
    """`error.message` of OpenAI- and Anthropic-style error bodies, else the start of the body."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except ValueError:
        pass
    return response.text[:300]


def retry_after(response: httpx.Response) -> str | None:
    value = response.headers.get("retry-after")
    if value:
        return value.strip()
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return str(max(1, math.ceil(float(millis) / 1000)))
        except ValueError:
            return None
    return None


def check_status(response: httpx.Response) -> None:
    """Raise our error for a non-2xx upstream answer (the body must have been read)."""
    if response.status_code < 400:
        return
    message = f"upstream {response.status_code}: {error_message(response)}"
    if response.status_code == 429:
        raise ProviderRateLimited(message, retry_after(response))
    raise ProviderUnavailable(message)


@contextmanager
def upstream_errors() -> Iterator[None]:
    """Transport failures and malformed bodies become ProviderTimeout / ProviderUnavailable."""
    try:
        yield
    except ProviderError:
        raise
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(f"upstream timed out: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"upstream failed: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderUnavailable(f"malformed upstream response: {exc!r}") from exc
