"""Where the one-machine stack keeps its files, which ports it uses, and its state file.

```
<data_dir>/
  stack.json          provisioning state: license key, PATs, port base   (mode 0600)
  stack.pid           the running processes: {"parts": {name: pid}, ...}  (mode 0600)
  logs/<part>.log     each part's stdout + stderr
  portal/  instance-self-managed/  instance-saas/  gateway/   each part's own data dir
```
"""

from __future__ import annotations

import json
import os
import random
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from codesuggest.common.data_dir import make_private

DEFAULT_PORT_BASE = 8180
PORT_BASE_ENV = "CODESUGGEST_PORT_BASE"
HOST = "127.0.0.1"
PARTS = ("portal", "self-managed", "saas", "gateway")
"""Start order: the gateway is ready only once the portal's and the SaaS instance's keys load."""
PORT_OFFSETS = {"portal": 0, "self-managed": 1, "saas": 2, "gateway": 3}
STATE_FILE = "stack.json"
PID_FILE = "stack.pid"


class StackError(Exception):
    """A failure the user can act on; the message names the part and the cause."""


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("codesuggest"))


@dataclass(frozen=True)
class Layout:
    data_dir: Path
    port_base: int = DEFAULT_PORT_BASE

    def port(self, part: str) -> int:
        return self.port_base + PORT_OFFSETS[part]

    def url(self, part: str) -> str:
        return f"http://{HOST}:{self.port(part)}"

    def part_dir(self, part: str) -> Path:
        return self.data_dir / (part if part in {"portal", "gateway"} else f"instance-{part}")

    def log_file(self, part: str) -> Path:
        return self.data_dir / "logs" / f"{part}.log"

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    @property
    def edge_url(self) -> str:
        """The embedded gateway answers the edge routes (`/ai/...`, `/auth/...`) itself."""
        return self.url("gateway")


def prepare_data_dir(data_dir: Path) -> Path:
    """Create the data directory (0700, files 0600) or explain why it cannot be used."""
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise StackError(f"data directory {data_dir} exists but is not a directory")
    try:
        make_private(data_dir)  # and tightens an existing one
        (data_dir / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise StackError(f"cannot create data directory {data_dir}: {exc.strerror}") from exc
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StackError(f"data directory {data_dir} is not writable by this user")
    return data_dir


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None when the file is absent; a corrupt file is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackError(
            f"{path} is corrupt ({exc.msg} at line {exc.lineno}); "
            "remove the data directory to start afresh"
        ) from exc
    if not isinstance(data, dict):
        raise StackError(f"{path} is corrupt (not a JSON object); remove the data directory")
    return data


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically with mode 0600 from the first byte (the file holds PATs)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_base(low: int = 10000, high: int = 32000) -> int:
    """A random base whose four consecutive ports are free (tests and benchmarks). Below
    Linux's ephemeral range (32768+), so an outgoing connection cannot take a port between
    this check and the bind."""
    for _ in range(200):
        base = random.randrange(low, high)
        if all(port_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise StackError("no four consecutive free ports found on loopback")
