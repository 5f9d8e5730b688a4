"""docs/operations.md, "A trial on one machine", run line by line as a user types it: each part
its own `codesuggest <part> serve` process, moved to free ports the way the doc says (`--port`
and the URL variables it names), against this machine's PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from codesuggest.stack.layout import free_port_base
from support.databases import SERVER, postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CLI = str(Path(sys.executable).parent / "codesuggest")
DOC = Path(__file__).parents[2] / "docs" / "operations.md"
DEFAULT_PORTS = {"portal": 8180, "instance": 8181, "gateway": 8183}
MOVED_BY = ("CODESUGGEST_INSTANCE_PORTAL_URL", "CODESUGGEST_INSTANCE_GATEWAY_URL", "--port")


def trial_lines() -> list[str]:
    """The commands of the doc's trial block, comments dropped."""
    text = DOC.read_text()
    section = text[text.index("### A trial on one machine") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the trial has no sh block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


@dataclass
class Trial:
    root: Path
    database: str
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    outputs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def moved(self, text: str) -> str:
        """The doc's default addresses replaced by this trial's ports."""
        for part, port in DEFAULT_PORTS.items():
            text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[part]}")
        return text

    def log(self, part: str) -> Path:
        return self.root / f"{part}.log"

    def tails(self) -> str:
        return "\n".join(
            f"--- {part}\n{self.log(part).read_text(errors='replace')[-3000:]}"
            for part in self.processes
        )

    def run(self, argv: list[str]) -> str:
        done = subprocess.run(
            [CLI, *argv[1:]],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{shlex.join(argv)}: {done.stdout}{done.stderr}"
        self.outputs.append(done)
        return done.stdout

    def serve(self, part: str) -> None:
        with self.log(part).open("wb") as out:
            self.processes[part] = subprocess.Popen(
                [CLI, part, "serve", "--port", str(self.ports[part])],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait(
            lambda: self.answers(f"http://127.0.0.1:{self.ports[part]}/monitoring/healthz"),
            f"the {part} to listen",
        )

    def answers(self, url: str) -> bool:
        for part, process in self.processes.items():
            assert process.poll() is None, f"the {part} exited\n{self.tails()}"
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self, predicate, what: str, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.tails()}"
            time.sleep(0.05)

    def export(self, assignment: str) -> None:
        name, _, value = assignment.partition("=")
        if name == "DATABASE_URL":
            assert value.startswith(SERVER.replace("postgresql:", "postgresql+psycopg:"))
            value = value.rsplit("/", 1)[0] + "/" + self.database.rsplit("/", 1)[1]
        elif name == "CODESUGGEST_INSTANCE_LICENSE_KEY":
            assert value == "cslk_...", value  # the doc's placeholder for the printed key
            printed = re.findall(r"cslk_[A-Za-z0-9_-]+", "".join(o.stdout for o in self.outputs))
            assert len(printed) == 1, self.outputs
            value = printed[0]
        elif value.startswith("$("):
            value = self.run(shlex.split(value[2:-1])).strip()
        else:
            value = self.moved(shlex.split(value)[0])
        self.env[name] = value

    def step(self, line: str) -> None:
        if line.startswith("export "):
            self.export(line.removeprefix("export "))
        elif line.startswith("printf "):
            words = shlex.split(line)
            assert words[2] == ">", line
            (self.root / words[3]).write_text(words[1].encode().decode("unicode_escape"))
        elif line.startswith("curl "):
            url = self.moved(shlex.split(line)[1])
            self.wait(lambda: self.answers(url), url)
        elif line.endswith(" &"):
            argv = shlex.split(line[:-2])
            assert argv[0] == "codesuggest" and argv[2:] == ["serve"], line
            self.serve(argv[1])
        else:
            argv = [self.moved(word) for word in shlex.split(line)]
            assert argv[0] == "codesuggest", line
            self.run(argv)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def trial(tmp_path: Path) -> Iterator[Trial]:
    base = free_port_base()
    ports = {"portal": base, "instance": base + 1, "gateway": base + 3}
    with postgres_database("cs_trial") as database:
        started = Trial(tmp_path, database, ports)
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CODESUGGEST_") and k not in {"DATABASE_URL", "REDIS_URL"}
        }
        started.env = clean | {
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "CODESUGGEST_CONFIG_DIR": str(tmp_path / "client"),
            # Where the doc says to move the instance's peers to other ports.
            "CODESUGGEST_INSTANCE_PORTAL_URL": f"http://127.0.0.1:{ports['portal']}",
            "CODESUGGEST_INSTANCE_GATEWAY_URL": f"http://127.0.0.1:{ports['gateway']}",
        }
        try:
            yield started
        finally:
            started.stop()


def test_the_doc_names_what_moves_the_ports() -> None:
    text = DOC.read_text()
    for name in MOVED_BY:
        assert f"`{name}`" in text, name


def test_each_part_on_its_own_syncs_and_serves_a_completion(trial: Trial) -> None:
    for line in trial_lines():
        trial.step(line)
    ready = httpx.get(f"http://127.0.0.1:{trial.ports['instance']}/monitoring/ready").json()
    assert ready == {"status": "ok", "realm": "self-managed", "instance_token": True}
    instance_log = trial.log("instance").read_text()
    assert '"outcome": "stored"' in instance_log and "token sync done" in instance_log
    assert "token sync failed" not in instance_log
    completed = trial.outputs[-1]
    assert completed.args[1] == "complete"
    assert completed.stdout.strip(), completed  # the suggestion
    assert "path: direct" in completed.stderr, completed
