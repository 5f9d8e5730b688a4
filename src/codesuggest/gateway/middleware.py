"""The gateway's one ASGI middleware, so that a request crosses a single layer before routing:
edge routes rewritten (`edge_routes`), the request id taken or made (bound to the logs, echoed
on the answer) and the request counted and timed by route template and status. Pure ASGI, so
streams pass through untouched."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codesuggest.common.logs import REQUEST_ID_HEADER, bind_request_id
from codesuggest.gateway.edge_routes import gateway_path, refusal
from codesuggest.gateway.metrics import GatewayMetrics

_ID_HEADER = REQUEST_ID_HEADER.encode()


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        refused = refusal(scope["path"], scope.get("raw_path"))
        path = gateway_path(scope["path"])
        if path is not None:
            scope = dict(scope, path=path, raw_path=None)
        request_id = (_ID_HEADER, bind_request_id(scope).encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id]
            await send(message)

        try:
            await (refused or self.app)(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(route, status, time.perf_counter() - started)
