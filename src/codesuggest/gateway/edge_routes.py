"""The edge's routes, answered by the gateway itself in the one-machine stack (no extra hop):
`/ai/<path>` -> `/<path>` and `/auth/v1/code/user_access_token` -> `/v1/code/user_access_token`
(docs/contracts.md section 7). The edge adds nothing to authentication; like the nginx edge it
keeps `/ai/metrics` internal, and it refuses an encoded slash (`/ai%2fv2%2fcompletions`) rather
than decode it into a route. The request bounds (1 MB bodies, as nginx) come from
common.serving, which every server of ours runs with."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

_AUTH_ROUTE = "/auth/v1/code/user_access_token"
_INTERNAL = {"/ai/metrics", "/ai/metrics/"}
_NOT_FOUND = JSONResponse({"error": "Not found"}, status_code=404)
_ENCODED_SLASH = JSONResponse(
    {"error": "An encoded slash (%2F) is not allowed in the path"}, status_code=400
)


def gateway_path(path: str) -> str | None:
    """The gateway's own path for an edge path, or None when `path` is not an edge route."""
    if path.startswith("/ai/"):
        return path[3:]
    if path == _AUTH_ROUTE:
        return path[5:]
    return None


def refusal(path: str, raw_path: bytes | None) -> Response | None:
    """The edge's own answer for an edge path it does not pass on, else None."""
    if not path.startswith(("/ai/", "/auth/")):
        return None
    if path in _INTERNAL:
        return _NOT_FOUND
    if raw_path is not None and b"%" in raw_path and b"%2f" in raw_path.lower():
        return _ENCODED_SLASH
    return None
