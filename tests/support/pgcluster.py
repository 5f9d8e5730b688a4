"""A throwaway PostgreSQL cluster of our own (initdb + pg_ctl in a temp dir, random port), for
tests that stop the database: the machine's shared server is never stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from support.servers import free_port


class PostgresCluster:
    """`start()`, `stop()` and `start()` again on the same port and data. As root the server
    runs as the `postgres` system user (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="codesuggest-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])

    def _run(self, args: list[str]) -> None:
        binary = shutil.which(args[0]) or f"/usr/lib/postgresql/15/bin/{args[0]}"
        result = subprocess.run(
            [*self._as, binary, *args[1:]], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            ["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w"]
            + ["start"]
        )
        return self

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def destroy(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
