"""Start, watch and stop the parts' server processes."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from codesuggest.stack.layout import HOST, PARTS, PORT_BASE_ENV, Layout, StackError
from codesuggest.stack.parts import MARKER, command, environment

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 20
STAGES = (("portal",), ("self-managed", "saas"), ("gateway",))
"""Started together within a stage: the self-managed instance syncs with the portal as it
starts, and the gateway is ready only once the portal's and the SaaS instance's keys load."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def check_port_free(part: str, port: int) -> None:
    """Fail early, naming the part, when its port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StackError(
                f"cannot start the {part}: port {port} on {HOST} is {reason}. "
                f"Stop what uses it, or pick other ports with --port-base (or {PORT_BASE_ENV})."
            ) from exc


def is_our_process(pid: int) -> bool:
    """True when `pid` is alive and is one of the stack's children (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return MARKER.encode() in cmdline and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def terminate_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (graceful), then SIGKILL after `timeout`."""
    if not is_our_process(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_our_process(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class PartProcess:
    name: str
    url: str
    log_file: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def failure(self, cause: str) -> StackError:
        return StackError(
            f"the {self.name} failed to start: {cause}\n"
            f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def wait_ready(part: PartProcess, timeout: float = READY_TIMEOUT) -> float:
    """Poll the part's readiness endpoint until it answers 200; seconds taken."""
    started = time.monotonic()
    deadline = started + timeout
    paths = ["/monitoring/ready", "/monitoring/healthz"]
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not part.alive():
                raise part.failure(f"the process exited with status {part.process.returncode}")
            try:
                response = client.get(part.url + paths[0])
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    return time.monotonic() - started
                if response.status_code == 404 and len(paths) > 1:
                    paths.pop(0)  # a part without a readiness route: liveness will do
                    continue
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            time.sleep(0.05)
    raise part.failure(f"not ready after {timeout:g}s ({last})")


@dataclass
class Supervisor:
    """The running parts, in start order; stops them in reverse order."""

    layout: Layout
    license_key: str | None
    base_env: Mapping[str, str] | None = None
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    parts: dict[str, PartProcess] = field(default_factory=dict)

    def start(self, name: str, detach: bool = False) -> PartProcess:
        check_port_free(name, self.layout.port(name))
        log_file = self.layout.log_file(name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                command(name, self.layout),
                env=environment(
                    name, self.layout, self.license_key, self.base_env, self.overrides.get(name)
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only `up`, which stops the parts in
                # order; with --detach the parts outlive it.
                start_new_session=True,
                close_fds=True,
            )
        part = PartProcess(name, self.layout.url(name), log_file, process)
        self.parts[name] = part
        return part

    def start_all(
        self,
        on_progress: Callable[[str, str], None] = lambda part, event: None,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        """Start every part and wait until each is ready; on any failure stop what started."""
        try:
            for name in PARTS:
                check_port_free(name, self.layout.port(name))
            for stage in STAGES:
                started = []
                for name in stage:
                    on_progress(name, "starting")
                    started.append(self.start(name))
                for part in started:
                    seconds = wait_ready(part, timeout)
                    on_progress(part.name, f"ready in {seconds:.1f}s")
        except BaseException:
            self.stop_all()
            raise

    def restart(self, name: str, timeout: float = READY_TIMEOUT) -> PartProcess:
        self.parts[name].stop()
        part = self.start(name)
        wait_ready(part, timeout)
        return part

    def stop_all(self) -> None:
        for name in reversed(list(self.parts)):
            self.parts[name].stop()
        self.parts.clear()

    def dead_parts(self) -> list[PartProcess]:
        return [part for part in self.parts.values() if not part.alive()]

    def pids(self) -> dict[str, int]:
        return {name: part.pid for name, part in self.parts.items()}
