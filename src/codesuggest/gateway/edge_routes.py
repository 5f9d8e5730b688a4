"""The edge's routes, answered by the gateway itself in the one-machine stack (no extra hop):
`/ai/<path>` -> `/<path>` and `/auth/v1/code/user_access_token` -> `/v1/code/user_access_token`
(docs/contracts.md section 7). The edge adds nothing to authentication."""

from __future__ import annotations

_AUTH_ROUTE = "/auth/v1/code/user_access_token"


def gateway_path(path: str) -> str | None:
    """The gateway's own path for an edge path, or None when `path` is not an edge route."""
    if path.startswith("/ai/"):
        return path[3:]
    if path == _AUTH_ROUTE:
        return path[5:]
    return None
