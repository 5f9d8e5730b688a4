"""An instance server as its own process (`codesuggest instance serve`) for the benchmarks, so
the load generator does not share its interpreter: SQLite in a temporary data directory unless
a database URL is given, no sync with a portal, no usage sink."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from codesuggest.common.serving import bind


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


def instance_env(data_dir: str, port: int, database_url: str | None) -> dict[str, str]:
    """The settings both benchmarks use; each adds its own."""
    return {
        "CODESUGGEST_INSTANCE_URL": f"http://127.0.0.1:{port}",
        "CODESUGGEST_INSTANCE_DATA_DIR": data_dir,
        "CODESUGGEST_INSTANCE_DATABASE_URL": database_url
        or f"sqlite:///{Path(data_dir) / 'bench.db'}",
        "CODESUGGEST_INSTANCE_SYNC_ENABLED": "false",
        "CODESUGGEST_INSTANCE_USAGE_SINK_ENABLED": "false",
    }


@contextmanager
def running_instance(env: dict[str, str], port: int) -> Iterator[str]:
    """The instance serving on `port` with `env`; yields its URL once it answers."""
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "codesuggest"),
            "instance",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the instance did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/monitoring/healthz").status_code == 200
    except httpx.HTTPError:
        return False
