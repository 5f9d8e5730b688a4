"""The README's "Running it" commands, taken from the README's own code block, run in order and
as written in one bash shell on a fresh clone of this repository, as a newcomer runs them.

Only the environment differs from a newcomer's: the data and config directories (XDG) are in
tmp and `CODESUGGEST_PORT_BASE` moves the four ports to a free range, so the test never touches
the user's stack nor the fixed ports 8180-8183."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codesuggest.stack.layout import free_port_base, port_free

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
MARK = "@@readme-command"


def running_it_block(readme: str) -> list[str]:
    """The lines of the first `sh` block under the README's "Running it" heading."""
    section = readme.split("\n## Running it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)\n```", section, re.DOTALL)
    assert block, "no ```sh block under ## Running it"
    return [line for line in block.group(1).splitlines() if line.strip()]


def words(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def script(lines: list[str]) -> str:
    """The lines as written, each followed by a marker with its exit status on both streams."""
    out = []
    for index, line in enumerate(lines):
        out.append(line)
        out.append(f's=$?; echo "{MARK} {index} $s"; echo "{MARK} {index} $s" >&2')
    return "\n".join(out) + "\n"


def split(stream: str, count: int) -> list[tuple[str, int | None]]:
    """Per command: what it printed and its exit status (None: it never finished)."""
    parts: list[tuple[str, int | None]] = []
    rest = stream
    for index in range(count):
        found = re.search(rf"^{MARK} {index} (\d+)$", rest, re.MULTILINE)
        if not found:
            parts.append((rest, None))
            rest = ""
            continue
        parts.append((rest[: found.start()], int(found.group(1))))
        rest = rest[found.end() :]
    return parts


def newcomer_env(tmp: Path, port_base: int) -> dict[str, str]:
    """Our environment minus anything that would configure codesuggest or put it on PATH
    already (the README's `. .venv/bin/activate` must be what does)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CODESUGGEST_") and name not in {"VIRTUAL_ENV", "DATABASE_URL"}
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if part and part != venv_bin
    )
    env["XDG_DATA_HOME"] = str(tmp / "data")
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    env["CODESUGGEST_PORT_BASE"] = str(port_base)
    env["COLUMNS"] = "200"  # rich wraps at 80 without a terminal
    return env


def expect(command: str, out: str, err: str, base: int, tmp: Path) -> None:
    """What the README promises each command prints."""
    if command == "up":
        assert "codesuggest is running" in out
        for offset in range(4):
            assert f"http://127.0.0.1:{base + offset}" in out
        assert re.search(r"demo user's PAT \(self-managed\): glpat-\S+", out)
        assert re.search(rf"admin pages \(self-managed\): http://127.0.0.1:{base + 1}/admin", out)
        assert "sign in as admin / " in out
        assert "the client config now points at the self-managed instance" in out
        assert "completions: embedded engine" in out
        config = json.loads((tmp / "config" / "codesuggest" / "client.json").read_text())
        assert config["instance_url"] == f"http://127.0.0.1:{base + 1}"
        assert (tmp / "data" / "codesuggest" / "stack.json").is_file()
    elif command == "demo":
        assert "using the running system" in out
        assert "demo complete: every step succeeded" in out
        assert "✗" not in out
    elif command == "complete":
        suggestion = out.strip()
        assert suggestion and suggestion != "(no suggestion)"
        assert "path: direct" in err and "intent: completion" in err
    elif command == "status":
        assert len(re.findall(r"│ \d+ +│ ready │", out)) == 4 and "not ready" not in out
    elif command == "down":
        assert "stopped: portal, self-managed, saas, gateway" in out
    else:
        raise AssertionError(f"the README runs `codesuggest {command}`: say here what it prints")


def test_the_readme_commands_run_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "codesuggest"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    assert (clone / "examples" / "hello.py").is_file()
    # `bash scripts/bootstrap` in the clone would build a second venv (minutes, from PyPI); the
    # venv this test runs in has the same codesuggest installed, so the clone's `.venv` is a
    # link to it and the README's `. .venv/bin/activate` puts that `codesuggest` on PATH.
    (clone / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    lines = running_it_block((clone / "README.md").read_text(encoding="utf-8"))
    assert lines[0] == ". .venv/bin/activate"
    commands = [words(line) for line in lines[1:]]
    assert all(command[0] == "codesuggest" for command in commands), lines
    assert commands[0][1] == "up" and "--detach" in commands[0]
    assert commands[-1][1] == "down"

    base = free_port_base()
    env = newcomer_env(tmp_path, base)
    try:
        result = subprocess.run(
            ["bash", "-c", script(lines)],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        # Whatever happened, nothing is left running (a no-op after the README's own `down`).
        subprocess.run(
            [str(Path(sys.prefix) / "bin" / "codesuggest"), "down"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    outs, errs = split(result.stdout, len(lines)), split(result.stderr, len(lines))
    assert outs[0][1] == 0, errs[0][0]
    for index, command in enumerate(commands, start=1):
        (out, status), (err, _) = outs[index], errs[index]
        where = f"`{lines[index]}` exited {status}\nstdout:\n{out}\nstderr:\n{err}"
        assert status == 0, where
        try:
            expect(command[1], out, err, base, tmp_path)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{where}") from None
    assert all(port_free(base + offset) for offset in range(4))
