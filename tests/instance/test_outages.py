"""A real instance process whose PostgreSQL and Redis are stopped and started again under it:
every request in the outage gets 503 + Retry-After and one log line without a traceback, and
the process recovers by itself. Both servers are throwaway ones of this module."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from codesuggest.instance import admin, seats
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import open_store
from instance.harness import free_port
from support.issuer import wait_until
from support.pgcluster import PostgresCluster

pytestmark = pytest.mark.postgres
DIRECT_ACCESS = "/api/v4/code_suggestions/direct_access"


class RedisServer:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=60, what="redis-server")
        return self

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@dataclass
class Instance:
    url: str
    pat: str
    log: Path
    process: subprocess.Popen[bytes]
    database: PostgresCluster
    redis: RedisServer

    def direct_access(self) -> httpx.Response:
        return httpx.post(self.url + DIRECT_ACCESS, headers={"PRIVATE-TOKEN": self.pat}, timeout=30)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    root = tmp_path_factory.mktemp("outages")
    database = PostgresCluster().start()
    redis_server = RedisServer(root).start()
    process = None
    try:
        port = free_port()
        env = {
            "CODESUGGEST_INSTANCE_URL": f"http://127.0.0.1:{port}",
            "CODESUGGEST_INSTANCE_DATA_DIR": str(root / "instance"),
            "CODESUGGEST_INSTANCE_DATABASE_URL": database.create_database("instance"),
            "CODESUGGEST_INSTANCE_REDIS_URL": redis_server.url,
            "CODESUGGEST_INSTANCE_SECRET": "outage-test-secret-0123456789abcdef",
            "CODESUGGEST_INSTANCE_REALM": "saas",  # signs its own user tokens: no gateway needed
            "CODESUGGEST_INSTANCE_DIRECT_ACCESS_PER_MINUTE": "100000",
        }
        settings = InstanceSettings(
            url=env["CODESUGGEST_INSTANCE_URL"],
            data_dir=root / "instance",
            database_url=env["CODESUGGEST_INSTANCE_DATABASE_URL"],
            secret=env["CODESUGGEST_INSTANCE_SECRET"],
            realm="saas",
        )
        store = open_store(settings)
        now = datetime.now(UTC)
        with store.session() as session:
            admin.create_user(session, "alice", now)
            admin.create_group(session, "acme")
            admin.add_member(session, "acme", "alice")
            seats.purchase(session, 5, now, "acme")
        with store.session() as session:
            seats.assign(session, "alice", now, "acme")
            pat = admin.create_token(session, "alice", now, ["api"], 1).token
        store.dispose()
        log = root / "instance.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "codesuggest.stack.serve_part", "instance", "serve"]
                + ["--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = env["CODESUGGEST_INSTANCE_URL"]

        def ready() -> bool:
            assert process is not None and process.poll() is None, log.read_text()[-2000:]
            try:
                return httpx.get(url + "/monitoring/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        # Generous: on a busy machine a cold start (imports, migrations) can take a minute.
        wait_until(ready, timeout=180, what="the instance")
        yield Instance(url, pat, log, process, database, redis_server)
    finally:
        if process is not None:
            process.terminate()
            process.wait(15)
        redis_server.stop()
        database.destroy()


def outage_lines(instance: Instance, since: int, message: str) -> list[str]:
    lines = instance.log.read_text(errors="replace")[since:].splitlines()
    return [line for line in lines if message in line]


def assert_unavailable(reply: httpx.Response, error: str) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == error
    assert int(reply.headers["retry-after"]) > 0


def test_database_stopped_gives_503_with_retry_after_then_recovers(instance: Instance) -> None:
    assert instance.direct_access().status_code == 201
    since = instance.log.stat().st_size
    instance.database.stop()
    try:
        replies = [instance.direct_access() for _ in range(3)]
        for reply in replies:
            assert_unavailable(reply, "database_unavailable")
        user = httpx.get(instance.url + "/api/v4/user", headers={"PRIVATE-TOKEN": instance.pat})
        assert_unavailable(user, "database_unavailable")
        assert httpx.get(instance.url + "/monitoring/ready").status_code == 503
    finally:
        instance.database.start()
    wait_until(lambda: instance.direct_access().status_code == 201, timeout=60, what="recovery")
    assert instance.process.poll() is None  # the same process: no restart
    logged = instance.log.read_text(errors="replace")[since:]
    assert len(outage_lines(instance, since, "database unavailable")) == 4
    assert "Traceback" not in logged and "unhandled error" not in logged


def test_redis_stopped_gives_503_with_retry_after_then_recovers(instance: Instance) -> None:
    assert instance.direct_access().status_code == 201
    since = instance.log.stat().st_size
    instance.redis.stop()
    try:
        for _ in range(3):
            assert_unavailable(instance.direct_access(), "redis_unavailable")
    finally:
        instance.redis.start()
    wait_until(lambda: instance.direct_access().status_code == 201, timeout=60, what="recovery")
    logged = instance.log.read_text(errors="replace")[since:]
    assert len(outage_lines(instance, since, "redis unavailable")) == 3
    assert "Traceback" not in logged
