"""A real nginx in front of two real gateway processes sharing one signing key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from codesuggest.edge.nginx import NginxOptions, render
from codesuggest.tokens import PrivateKey
from support.issuer import Issuer
from support.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None and os.geteuid() == 0:
        subprocess.run(["bash", str(REPO / "scripts" / "install-system-packages")], check=False)
        found = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
    return found


def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        issuer_url: str,
        key_file: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = data_dir / "gateway.log"
        env = dict(os.environ)
        env.update(
            CODESUGGEST_GATEWAY_PUBLIC_URL=self.url,
            CODESUGGEST_GATEWAY_DATA_DIR=str(data_dir),
            CODESUGGEST_GATEWAY_SIGNING_KEY_FILE=str(key_file),
            CODESUGGEST_GATEWAY_TRUSTED_ISSUERS=f'[{{"url": "{issuer_url}", "kind": "portal"}}]',
        )
        env.update(extra_env or {})
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: bool = True) -> GatewayProcess:
        """Start; wait until ready, or (`ready=False`) only until it answers at all."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "codesuggest.stack.serve_part",
                    "gateway",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        path = "/monitoring/ready" if ready else "/monitoring/healthz"
        wait_until(lambda: self.answers(path), 120, f"gateway on {self.url} ({self.log})")
        return self

    def answers(self, path: str = "/monitoring/ready") -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(self.url + path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


class Nginx:
    def __init__(self, binary: str, options: NginxOptions, runtime: Path) -> None:
        self.binary = binary
        self.port = int(options.listen.rsplit(":", 1)[-1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime = runtime
        self.conf = runtime / "nginx.conf"
        self.conf.write_text(render(options))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        check = subprocess.run(
            [self.binary, "-t", "-q", "-c", str(self.conf)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(listening, what="nginx")
        return self

    def error_log(self) -> str:
        path = self.runtime / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


def nginx_options(gateways: list[str], **overrides: object) -> tuple[NginxOptions, Path]:
    # nginx workers run as an unprivileged user when started as root: a world-readable dir.
    runtime = Path(tempfile.mkdtemp(prefix="codesuggest-nginx-"))
    runtime.chmod(0o755)
    values: dict[str, object] = {
        "gateways": gateways,
        "listen": f"127.0.0.1:{free_port()}",
        "runtime_dir": str(runtime),
        "foreground": True,
    }
    values.update(overrides)
    return NginxOptions(**values), runtime  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    binary = nginx_binary()
    if binary is None:
        pytest.fail("nginx is not installed (run scripts/install-system-packages as root)")
    return binary


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    issuer = Issuer().start()
    yield issuer
    issuer.stop()


@contextmanager
def replicas(
    root: Path, issuer_url: str, env: dict[str, str] | None = None
) -> Iterator[list[GatewayProcess]]:
    """Two gateway processes sharing one signing key, stopped on the way out."""
    key_file = root / "signing.pem"
    PrivateKey.generate().write(key_file)
    started: list[GatewayProcess] = []
    try:
        for index in range(2):
            data_dir = root / f"gateway-{index}"
            data_dir.mkdir()
            started.append(GatewayProcess(data_dir, issuer_url, key_file, env).start())
        yield started
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, issuer: Issuer) -> Iterator[list[GatewayProcess]]:  # type: ignore[no-untyped-def]
    with replicas(tmp_path_factory.mktemp("gateways"), issuer.url) as started:
        yield started


@pytest.fixture
def edge(nginx_bin: str, gateways: list[GatewayProcess]) -> Iterator[Nginx]:
    """A fresh nginx per test: a replica another test made fail rests for `fail_timeout` in the
    edge's memory, and a test that needs every replica live must not inherit that."""
    options, runtime = nginx_options([g.url for g in gateways])
    nginx = Nginx(nginx_bin, options, runtime).start()
    yield nginx
    nginx.stop()
    shutil.rmtree(runtime, ignore_errors=True)
