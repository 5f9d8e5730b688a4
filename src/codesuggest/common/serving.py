"""Run an ASGI app with uvicorn, with the same resource bounds on every server we run.

`ServingLimits` is the one place the bounds live (docs/operations.md lists the values); they are
enforced in the HTTP protocol itself, before any app code runs, so every route of every part is
covered: a body larger than `max_body_bytes` is refused with 413 from its `Content-Length`
without being read (a chunked one as soon as it passes the limit; every refusal here is
`{"error": "<what>"}`); more than `max_headers`
headers or more than `max_header_bytes` of request line and headers get 431; headers not
complete within `header_timeout` seconds of the first byte get 408 (slowloris); a connection
with no request in flight is closed after `keep_alive_timeout`, also before its first request;
beyond `max_connections` open connections a request gets 503.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MiB = 1024 * 1024
LINGER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class ServingLimits:
    max_body_bytes: int = 1 * MiB  # nginx's client_max_body_size 1m
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024  # request line plus every header line
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000


DEFAULT_LIMITS = ServingLimits()
PEER_KEEPALIVE_EXPIRY = DEFAULT_LIMITS.keep_alive_timeout - 1.0
"""Idle seconds our HTTP clients keep a connection to another part: less than the parts' own
idle keep-alive, so that a request never goes out on a connection its server is closing at that
moment (httpx's default, 5 s, equals the servers'; the edge's nginx keeps 4 s too)."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the protocol then answers `status`."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bounded_protocol(limits: ServingLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with `limits` enforced (see the module docstring)."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _header_count = 0
        _header_bytes = 0
        _body_bytes = 0
        _header_timer: asyncio.TimerHandle | None = None
        _lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.timeout_keep_alive = limits.keep_alive_timeout  # type: ignore[assignment]
            # uvicorn arms its keep-alive timer only after a response: cover the first request.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_count = 0
            self._header_bytes = 0
            self._body_bytes = 0
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._headers_late)

        def on_url(self, url: bytes) -> None:
            self._count_header_bytes(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_headers:
                raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            self._count_header_bytes(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            for name, value in self.headers:
                if name == b"content-length" and _too_long(value, limits.max_body_bytes):
                    raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _body_message(limits))
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._body_bytes += len(body)
            if self._body_bytes > limits.max_body_bytes:
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _body_message(limits))
            super().on_body(body)

        def send_400_response(self, msg: str) -> None:
            cause = self._parser_error_cause()
            if isinstance(cause, _Refused):
                self._refuse(cause)
            else:
                super().send_400_response(msg)

        def _parser_error_cause(self) -> BaseException | None:
            error = sys.exc_info()[1]
            return None if error is None else (error.__cause__ or error.__context__)

        def _count_header_bytes(self, size: int) -> None:
            self._header_bytes += size
            if self._header_bytes > limits.max_header_bytes:
                raise _Refused(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"Request line and headers are larger than {limits.max_header_bytes} bytes",
                )

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            self._refuse(_Refused(HTTPStatus.REQUEST_TIMEOUT, "Request headers took too long"))

        def _refuse(self, refusal: _Refused) -> None:
            """Answer `refusal` and close, unless the app already started a response."""
            self._cancel_header_timer()
            if self.transport.is_closing() or self._lingering:
                return
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                body = json.dumps({"error": refusal.message}).encode()
                status = refusal.status
                self.transport.write(
                    b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                    + b"content-type: application/json\r\n"
                    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                    + body
                )
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
            # Lingering close (as nginx): keep reading and dropping what the client is still
            # sending for a moment, so it reads our answer instead of a connection reset.
            self._lingering = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

        def data_received(self, data: bytes) -> None:
            if not self._lingering:
                super().data_received(data)

        def eof_received(self) -> None:
            if self._lingering:
                self.transport.close()

    return BoundedHttpToolsProtocol


def _too_long(content_length: bytes, limit: int) -> bool:
    try:
        return int(content_length) > limit
    except ValueError:
        return False  # the parser refuses a malformed Content-Length itself


def _body_message(limits: ServingLimits) -> str:
    return f"Request body is larger than {limits.max_body_bytes} bytes"


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (see `sock.getsockname()[1]`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(
    app: Any,
    host: str,
    port: int,
    log_level: str = "warning",
    limits: ServingLimits = DEFAULT_LIMITS,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
        http=bounded_protocol(limits),
        limit_concurrency=limits.max_connections,
    )


class DrainingServer(uvicorn.Server):
    """Graceful stop for a replica behind a load balancer. On the first SIGTERM/SIGINT it calls
    `on_drain()` (the app turns not-ready), keeps serving for `drain_seconds` (Kubernetes takes
    the pod out of the endpoints, the edge stops sending), then runs uvicorn's graceful
    shutdown: stop accepting, finish in-flight requests (`timeout_graceful_shutdown`), lifespan
    shutdown. A second signal stops at once."""

    def __init__(
        self, config: uvicorn.Config, drain_seconds: float, on_drain: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.on_drain = on_drain
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stop_at is None:
            self.on_drain()
            self._stop_at = time.monotonic() + self.drain_seconds
            if self.drain_seconds > 0:
                self._captured_signals.append(sig)  # re-raised on exit, as uvicorn does
                return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)
