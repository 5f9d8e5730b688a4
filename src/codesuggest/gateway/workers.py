"""`gateway serve --workers N`: N worker processes serving one address.

Each worker runs its own uvicorn server on its own `SO_REUSEPORT` socket, so the kernel spreads
new connections over the workers evenly (one shared socket hands most of them to whichever
worker is waiting in `accept`). The supervisor binds the address first without listening: a
port taken by anyone else fails at once, and nobody else can take it while workers restart.

What the workers share: the signing key (generated here before they start, when none is
configured), the usage outbox (SQLite, leased shipping: see usage/outbox.py) and the metrics
(prometheus_client's multiprocess mode in `PROMETHEUS_MULTIPROC_DIR`, summed by any worker's
`/metrics`). Each keeps its own JWKS cache, refreshed on its own. A worker that dies is
replaced; one that cannot start stops the gateway; a worker whose supervisor is killed dies too.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

from codesuggest.common.logs import get_logger

if TYPE_CHECKING:
    from codesuggest.gateway.settings import GatewaySettings

log = get_logger("codesuggest.gateway.workers")

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_CANNOT_START = 3


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def reuseport_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def serve_workers(host: str, port: int, count: int) -> None:
    """Run `count` workers until SIGTERM or SIGINT, then stop them gracefully."""
    from codesuggest.gateway.keys import load_signing_key
    from codesuggest.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    load_signing_key(settings)  # generated once, here, for all of them
    holder = reuseport_socket(host, port, listen=False)
    metrics_dir, made = _metrics_dir()
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(host, port), daemon=False)
        process.start()
        return process

    workers = [start() for _ in range(count)]
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(workers):
                if process.is_alive():
                    continue
                if process.exitcode == _CANNOT_START:
                    log.error("a gateway worker could not start; stopping")
                    stop.set()
                    break
                log.warning("gateway worker exited; starting another", exitcode=process.exitcode)
                workers[i] = start()
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for process in workers:
            process.join(timeout=settings.shutdown_delay + 30)
            if process.is_alive():
                process.kill()
        holder.close()
        if made:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if any(p.exitcode == _CANNOT_START for p in workers):
        sys.exit(1)


def _metrics_dir() -> tuple[Path, bool]:
    """The workers' shared metrics directory: the operator's `PROMETHEUS_MULTIPROC_DIR`
    (emptied of a previous run's files) or a new temporary one (made = True), exported to
    the workers through the environment they inherit."""
    configured = os.environ.get(METRICS_DIR_ENV)
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="codesuggest-gateway-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(path)
    return path, True


def serve_one(
    settings: GatewaySettings, host: str, port: int, sock: socket.socket | None = None
) -> bool:
    """Serve the gateway in this process until SIGTERM/SIGINT: turn not-ready, keep serving
    for `shutdown_delay` (the edge stops sending), then shut down gracefully. False when the
    server could not start."""
    from codesuggest.common.serving import DrainingServer, server_config
    from codesuggest.gateway.app import create_app

    gateway = create_app(settings)

    def drain() -> None:
        gateway.state.ctx.draining = True
        log.info("shutting down: not ready", drain_seconds=settings.shutdown_delay)

    server = DrainingServer(server_config(gateway, host, port), settings.shutdown_delay, drain)
    server.run(sockets=[sock] if sock is not None else None)
    return server.started


def _worker(host: str, port: int) -> None:
    """One worker process: the gateway app on its own socket."""
    from codesuggest.common.logs import configure
    from codesuggest.gateway.settings import GatewaySettings

    _die_with_supervisor()
    settings = GatewaySettings()
    configure(settings.log_level)
    if not serve_one(settings, host, port, reuseport_socket(host, port)):
        sys.exit(_CANNOT_START)


def _die_with_supervisor() -> None:
    """A worker whose supervisor is killed (SIGKILL, a crash) goes with it, so no orphan keeps
    serving; on a clean stop the supervisor shuts its workers down gracefully first."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: nothing to arrange
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the supervisor died before the line above
        os._exit(1)
