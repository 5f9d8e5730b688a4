"""A loopback reverse proxy that records every exchange, put between the GitLab Language
Server and a real part of the stack, so tests assert on what the server sent and received."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from support.servers import ServerThread

HOP_BY_HOP = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "content-encoding",
    "date",
    "server",
}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    response: Any


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._http = httpx.AsyncClient(timeout=60)
        app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "HEAD"])]
        )
        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url

    async def _forward(self, request: Request) -> Response:
        raw = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        target = self.upstream + request.url.path
        if request.url.query:
            target += "?" + request.url.query
        answer = await self._http.request(request.method, target, content=raw, headers=headers)
        with self._lock:
            self.exchanges.append(
                Exchange(
                    request.method,
                    request.url.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    _json(raw),
                    answer.status_code,
                    _json(answer.content),
                )
            )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(answer.content, status_code=answer.status_code, headers=out)

    def calls(self, path: str, method: str | None = None) -> list[Exchange]:
        with self._lock:
            return [
                e
                for e in self.exchanges
                if e.path == path and (method is None or e.method == method)
            ]

    def graphql(self, operation: str) -> list[Exchange]:
        return [
            e
            for e in self.calls("/api/graphql")
            if isinstance(e.body, dict) and e.body.get("operationName") == operation
        ]

    def start(self) -> RecordingProxy:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


class Collector:
    """A loopback stand-in for GitLab's Snowplow collector (the language server's own
    telemetry): it takes every event and answers 200."""

    def __init__(self) -> None:
        self.received: list[str] = []
        app = Starlette(routes=[Route("/{path:path}", self._take, methods=["GET", "POST"])])
        self.server = ServerThread(app)

    async def _take(self, request: Request) -> Response:
        self.received.append(request.url.path)
        return Response(status_code=200)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Collector:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
