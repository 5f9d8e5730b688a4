"""`codesuggest gateway serve --workers 2` as real processes: connections reach both workers,
both sign and verify with one key, `/metrics` from any worker counts every request once, every
usage event is shipped exactly once, and killing the supervisor takes its workers with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from codesuggest.tokens import COMPLETE_CODE, PrivateKey, Signer
from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME
from gateway.providers.fake_servers import FakeOpenAI
from support.issuer import wait_until
from support.servers import free_port

MODEL = "codellama:7b-code"
REQUESTS = 40
REQUESTED = 'codesuggest_gateway_requests_total{route="/v2/completions",status="200"}'


class Workers:
    def __init__(self, tmp: Path, model_url: str) -> None:
        self.data_dir = tmp / "gateway"
        self.metrics_dir = tmp / "metrics"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "gateway.log"
        self.env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "CODESUGGEST_GATEWAY_DATA_DIR": str(self.data_dir),
            "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "openai",
            "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_BASE_URL": model_url + "/v1",
            "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_MODEL": MODEL,
            "CODESUGGEST_GATEWAY_COMPLETIONS__EMBEDDED_ENABLED": "false",
            "CODESUGGEST_GATEWAY_USAGE__FLUSH_INTERVAL": "0.1",
            "CODESUGGEST_GATEWAY_FAIRNESS__USER_BURST": "1000",  # one user sends them all
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Workers:
        exe = Path(sys.executable).with_name("codesuggest")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(exe), "gateway", "serve", "--port", str(self.port), "--workers", "2"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_until(self._both_ready, timeout=90, what=f"two gateway workers ({self.log})")
        return self

    def _both_ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
        if len(self.worker_pids()) < 2:
            return False
        try:
            return httpx.get(self.url + "/monitoring/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> set[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def requests_by_pid(self) -> dict[int, float]:
        """Each worker's own count of answered completions, from its multiprocess file."""
        counts: dict[int, float] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            pid = int(path.stem.split("_")[1])
            for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
                _, sample, labels, _ = json.loads(key)
                if sample == "codesuggest_gateway_requests_total" and labels == {
                    "route": "/v2/completions",
                    "status": "200",
                }:
                    counts[pid] = counts.get(pid, 0) + value
        return counts

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workers(tmp_path_factory, model) -> Iterator[Workers]:  # type: ignore[no-untyped-def]
    gateway = Workers(tmp_path_factory.mktemp("workers"), model.url).start()
    yield gateway
    gateway.stop()


def _user_headers(data_dir: Path) -> dict[str, str]:
    """A user token signed with the key the supervisor generated into the data directory."""
    key = PrivateKey.from_file(data_dir / "signing-key.pem")
    token, _ = Signer(key, DEFAULT_SERVICE_NAME).mint(
        subject="worker-user",
        audience=DEFAULT_SERVICE_NAME,
        lifetime=600,
        extra={"gitlab_realm": "saas", "scopes": [COMPLETE_CODE], "token_kind": "user"},
    )
    return {
        "Authorization": f"Bearer {token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Realm": "saas",
        "X-Gitlab-Global-User-Id": "worker-user",
    }


def _completion(i: int) -> dict[str, object]:
    return {
        "current_file": {
            "file_name": "main.py",
            "content_above_cursor": f"def f{i}(a, b):\n    ",
            "content_below_cursor": "\n",
        }
    }


def test_requests_spread_over_both_workers_and_are_counted_once(workers):
    headers = _user_headers(workers.data_dir)
    for i in range(REQUESTS):
        with httpx.Client(base_url=workers.url, timeout=10) as fresh:  # a new connection each
            r = fresh.post("/v2/completions", json=_completion(i), headers=headers)
            assert r.status_code == 200, r.text
    # A request is counted once its answer has gone out: the last one may still be counting.
    wait_until(lambda: sum(workers.requests_by_pid().values()) >= REQUESTS, what="all counted")
    by_pid = workers.requests_by_pid()
    assert set(by_pid) <= workers.worker_pids()
    assert len([n for n in by_pid.values() if n > 0]) == 2, by_pid  # both workers served
    assert sum(by_pid.values()) == REQUESTS
    for _ in range(6):  # whichever worker answers /metrics, it reports them all
        with httpx.Client(base_url=workers.url, timeout=10) as fresh:
            text = fresh.get("/metrics").text
        line = next(line for line in text.splitlines() if line.startswith(REQUESTED))
        assert float(line.split()[-1]) == REQUESTS


def test_every_usage_event_is_shipped_exactly_once(workers):
    jsonl = workers.data_dir / "usage.jsonl"

    def events() -> list[dict]:
        if not jsonl.exists():
            return []
        rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line]
        return [e for e in rows if e["name"] == "code_suggestion_requested"]

    wait_until(lambda: len(events()) >= REQUESTS, timeout=30, what="usage events shipped")
    shipped = events()
    assert len(shipped) == REQUESTS
    assert len({e["event_id"] for e in shipped}) == REQUESTS
    assert {e["global_user_id"] for e in shipped} == {"worker-user"}


def test_killing_the_supervisor_takes_its_workers_with_it(tmp_path, model):
    gateway = Workers(tmp_path, model.url).start()
    pids = gateway.worker_pids()
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(timeout=10)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in pids)

    wait_until(gone, timeout=20, what="workers to exit after their supervisor")
    with pytest.raises(httpx.ConnectError):
        httpx.get(gateway.url + "/monitoring/healthz", timeout=2)
