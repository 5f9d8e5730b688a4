"""Reading error bodies of the instance and the gateway."""

from __future__ import annotations

import httpx


def error_message(response: httpx.Response) -> str:
    """The human text of an error body: `message`, `error` or `detail`, whichever is there."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else str(value)
    return str(data)[:200]
