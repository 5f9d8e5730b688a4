"""Real uvicorn servers on loopback, in a thread, on a random free port."""

from __future__ import annotations

import threading
import time

import uvicorn

from codesuggest.common.serving import DEFAULT_LIMITS, ServingLimits, bind, server_config


class ServerThread:
    """Serves `app` on 127.0.0.1; `stop()` then `start()` again reuses the same port, so a test
    can take a part down and bring it back at the same URL."""

    def __init__(self, app, port: int = 0, limits: ServingLimits = DEFAULT_LIMITS) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.port = port
        self.limits = limits
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerThread:
        sock = bind("127.0.0.1", self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(
            server_config(self.app, "127.0.0.1", self.port, limits=self.limits)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port free at the time of asking, for a server a test starts in another process."""
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()
    return port
