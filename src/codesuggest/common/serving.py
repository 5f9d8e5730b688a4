"""Run an ASGI app with uvicorn on a given host/port or on an already-bound socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (see `sock.getsockname()[1]`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:  # type: ignore[no-untyped-def]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
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
