"""The edge's routes, answered by the gateway itself in the one-machine stack (no extra hop):
`/ai/<path>` -> `/<path>` and `/auth/v1/code/user_access_token` -> `/v1/code/user_access_token`
(docs/contracts.md section 7). The edge adds nothing to authentication."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_AUTH_ROUTE = "/auth/v1/code/user_access_token"


class EdgeRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/ai/"):
                scope = dict(scope, path=path[3:], raw_path=None)
            elif path == _AUTH_ROUTE:
                scope = dict(scope, path=path[5:], raw_path=None)
        await self.app(scope, receive, send)
