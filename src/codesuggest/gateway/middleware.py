"""The gateway's one ASGI middleware, so that a request crosses a single layer before routing:
edge routes rewritten (`edge_routes`), the request id taken or made (bound to the logs, echoed
on the answer) and the request counted and timed by route template and status. Pure ASGI, so
streams pass through untouched.

It also serves the hot routes (`POST` completions and generations, `hot_routes`) itself: their
endpoints take only the request and parse their bodies themselves, so FastAPI's routing, its
per-request exit stacks and dependency resolution have nothing to do for them, and they cost
more than the rest of a completion's own work. The app puts this middleware outside FastAPI's
own error, telemetry and body-limit layers (`GatewayApp`), so a completion crosses this one
layer; errors are answered as inside: a `GatewayError` by its handler, anything else (the
middleware's own code included) by the app's crash handler unless an answer has begun, then
raised on for the server to log (docs/architecture.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codesuggest.common.logs import REQUEST_ID_HEADER, bind_request_id
from codesuggest.gateway.edge_routes import gateway_path, refusal
from codesuggest.gateway.errors import GatewayError, handle_gateway_error
from codesuggest.gateway.metrics import GatewayMetrics

_ID_HEADER = REQUEST_ID_HEADER.encode()

Endpoint = Callable[[Request], Awaitable[Response]]
CrashHandler = Callable[[Request, Exception], Awaitable[Response]]


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        hot_routes: Mapping[str, APIRoute],
        crash: CrashHandler,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.hot_routes = dict(hot_routes)
        self.crash = crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = (_ID_HEADER, bind_request_id(scope).encode("latin-1"))
        status = 500
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", ()), request_id]
            await send(message)

        try:
            refused = refusal(scope["path"], scope.get("raw_path"))
            path = gateway_path(scope["path"])
            if path is not None:
                scope = dict(scope, path=path, raw_path=None)
            hot = self.hot_routes.get(scope["path"]) if scope["method"] == "POST" else None
            if refused is not None:
                await refused(scope, receive, send_with_id)
            elif hot is not None:
                scope["route"] = hot
                scope["endpoint"] = hot.endpoint
                await self._serve_hot(hot.endpoint, scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as exc:  # answered by the crash handler unless answered already
            if not answered:
                crashed = await self.crash(Request(scope, receive), exc)
                await crashed(scope, receive, send_with_id)
            raise  # for the server's log
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(route, status, time.perf_counter() - started)

    async def _serve_hot(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except GatewayError as exc:
            response = await handle_gateway_error(request, exc)
        await response(scope, receive, send)
