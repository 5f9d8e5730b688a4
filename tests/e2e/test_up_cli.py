"""`codesuggest up --detach --json`, `status --json`, `down`, and the failure messages, run as
a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from codesuggest.common.model_server import MODEL_UNREACHABLE
from codesuggest.stack.console import print_summary
from codesuggest.stack.layout import free_port_base, port_free

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "codesuggest")


def run(
    *args: str, home: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, CODESUGGEST_CONFIG_DIR=str(home / "client"), COLUMNS="200")
    full.update(env or {})
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full, timeout=timeout)


# Two whole `up`s and seven CLI starts: on a loaded two-core machine (another test module on the
# other pytest-xdist worker) this passes the suite's 120 s hang guard.
@pytest.mark.timeout(300)
def test_up_detach_status_down_and_reuse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    base = free_port_base()
    up = run(
        "up", "--detach", "--json", "--data-dir", str(data), "--port-base", str(base), home=tmp_path
    )
    try:
        assert up.returncode == 0, up.stderr
        body = json.loads(up.stdout)
        assert body["data_dir"] == str(data.resolve())
        assert body["portal"]["url"] == f"http://127.0.0.1:{base}"
        assert body["gateway"]["url"] == body["edge"]["url"] == f"http://127.0.0.1:{base + 3}"
        sm, saas = body["instances"]["self-managed"], body["instances"]["saas"]
        assert sm["url"] == f"http://127.0.0.1:{base + 1}" and saas["url"].endswith(str(base + 2))
        assert all(
            p.startswith("glpat-")
            for p in (sm["admin_pat"], sm["user_pat"], saas["admin_pat"], saas["user_pat"])
        )
        assert stat.S_IMODE((data / "stack.json").stat().st_mode) == 0o600
        for part in (sm, saas):
            assert part["admin_url"] == part["url"] + "/admin" and part["admin_user"] == "admin"
            assert len(part["admin_password"]) >= 12
        assert sm["admin_password"] != saas["admin_password"]
        pages = httpx.get(sm["admin_url"] + "/users")
        assert pages.status_code == 303 and pages.headers["location"].startswith("/admin/sign_in")
        client_config = json.loads((tmp_path / "client" / "client.json").read_text())
        assert client_config == {"instance_url": sm["url"], "token": sm["user_pat"]}

        status = run("status", "--json", "--data-dir", str(data), home=tmp_path)
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        assert state["running"] is True
        assert {name for name, part in state["parts"].items() if part["ready"]} == {
            "portal",
            "self-managed",
            "saas",
            "gateway",
        }
        reply = httpx.post(
            sm["url"] + "/api/v4/code_suggestions/direct_access",
            headers={"PRIVATE-TOKEN": sm["user_pat"]},
        )
        assert reply.status_code == 201, reply.text

        again = run("up", "--detach", "--data-dir", str(data), home=tmp_path)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = run("down", "--data-dir", str(data), home=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert all(port_free(base + offset) for offset in range(4))
    stopped = run("status", "--json", "--data-dir", str(data), home=tmp_path)
    assert stopped.returncode == 3 and json.loads(stopped.stdout)["running"] is False

    # A second `up` on the same data directory reuses everything: same PATs, same license.
    reused = run("up", "--detach", "--json", "--data-dir", str(data), home=tmp_path)
    try:
        assert reused.returncode == 0, reused.stderr
        assert json.loads(reused.stdout)["instances"] == body["instances"]
        reply = httpx.post(
            sm["url"] + "/api/v4/code_suggestions/direct_access",
            headers={"PRIVATE-TOKEN": sm["user_pat"]},
        )
        assert reply.status_code == 201, reply.text
    finally:
        run("down", "--data-dir", str(data), home=tmp_path)


def test_the_summary_prints_the_admin_pages_and_the_admins_first_password() -> None:
    instance = {"admin_user": "admin", "user_pat": "glpat-user", "admin_pat": "glpat-admin"}
    body = {
        "data_dir": "/data",
        "portal": {"url": "http://127.0.0.1:8180"},
        "gateway": {"url": "http://127.0.0.1:8183"},
        "edge": {"url": "http://127.0.0.1:8183"},
        "instances": {
            "self-managed": instance
            | {
                "url": "http://127.0.0.1:8181",
                "admin_url": "http://127.0.0.1:8181/admin",
                "admin_password": "first-sm-password",
            },
            "saas": instance
            | {
                "url": "http://127.0.0.1:8182",
                "admin_url": "http://127.0.0.1:8182/admin",
                "admin_password": "first-saas-password",
            },
        },
    }
    console = Console(record=True, width=200)
    print_summary(console, body, config_written=False)
    text = console.export_text()
    assert "admin pages (self-managed): http://127.0.0.1:8181/admin" in text
    assert "sign in as admin / first-sm-password" in text
    assert "admin pages (SaaS): http://127.0.0.1:8182/admin" in text
    assert "first-saas-password" in text


def test_port_in_use_names_the_part_and_starts_nothing(tmp_path: Path) -> None:
    base = free_port_base()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        up = run(
            "up",
            "--detach",
            "--data-dir",
            str(tmp_path / "d"),
            "--port-base",
            str(base),
            home=tmp_path,
        )
    assert up.returncode == 1
    message = " ".join(up.stderr.split())
    assert "SaaS" in message or "saas" in message
    assert f"port {base + 2}" in message and "already in use" in message
    assert "--port-base (or CODESUGGEST_PORT_BASE)" in message
    assert all(port_free(base + offset) for offset in (0, 1, 3))
    assert not (tmp_path / "d" / "stack.pid").exists()


def test_part_dying_at_start_shows_its_log_and_stops_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "gateway").write_text("not a directory\n")  # the gateway cannot keep its key here
    base = free_port_base()
    up = run("up", "--detach", "--data-dir", str(data), "--port-base", str(base), home=tmp_path)
    assert up.returncode == 1
    assert "the gateway failed to start" in up.stderr
    assert "last lines of" in up.stderr and "gateway.log" in up.stderr
    assert all(port_free(base + offset) for offset in range(4))
    assert not (data / "stack.pid").exists()


def test_corrupt_state_file_is_named(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "stack.json").write_text("{not json")
    up = run(
        "up",
        "--detach",
        "--data-dir",
        str(data),
        "--port-base",
        str(free_port_base()),
        home=tmp_path,
    )
    assert up.returncode == 1
    assert "stack.json is corrupt" in " ".join(up.stderr.split())


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    up = run("up", "--detach", "--data-dir", str(target), home=tmp_path)
    assert up.returncode == 1 and "is not a directory" in " ".join(up.stderr.split())


@pytest.mark.parametrize("base", ["65534", "-5", "0"])
def test_a_port_base_out_of_range_is_refused_before_anything_is_saved(
    tmp_path: Path, base: str
) -> None:
    data = tmp_path / "stack"
    up = run("up", "--detach", "--data-dir", str(data), "--port-base", base, home=tmp_path)
    assert up.returncode == 2
    assert "Traceback" not in up.stderr
    message = " ".join(up.stderr.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
    assert "Invalid value for '--port-base'" in message
    assert not data.exists()


def test_the_port_base_from_the_environment_is_checked_like_the_option(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    up = run("up", "--data-dir", str(data), home=tmp_path, env={"CODESUGGEST_PORT_BASE": "70000"})
    assert up.returncode == 2
    message = " ".join(up.stderr.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
    assert "(env var: 'CODESUGGEST_PORT_BASE'): 70000 is not in the range" in message
    assert not data.exists()


def test_an_unreachable_model_is_named_by_up_the_gateway_log_and_complete(tmp_path: Path) -> None:
    """The openai provider pointed at a closed port on loopback (bound, never listening)."""
    data, key = tmp_path / "stack", "sk-never-shown-0123456789"
    source = tmp_path / "hello.py"
    source.write_text("def greet(name):\n    return \n")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        model_url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        env = {
            "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "openai",
            "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_BASE_URL": model_url,
            "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_MODEL": "qwen2.5-coder-1.5b",
            "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_API_KEY": key,
        }
        base = free_port_base()
        up = run(
            "up",
            "--detach",
            "--data-dir",
            str(data),
            "--port-base",
            str(base),
            home=tmp_path,
            env=env,
        )
        try:
            assert up.returncode == 0, up.stderr
            assert (
                f"completions: openai at {model_url} (completions API), model qwen2.5-coder-1.5b"
                in up.stdout
            )
            assert key not in up.stdout + up.stderr
            complete = run("complete", f"{source}:2:12", home=tmp_path)
        finally:
            run("down", "--data-dir", str(data), home=tmp_path)
    assert complete.returncode == 1
    said = " ".join(complete.stderr.split())
    assert MODEL_UNREACHABLE in said
    assert "The gateway cannot reach its model server" in said
    assert "logs/gateway.log" in said
    assert model_url not in complete.stderr  # the client learns the cause, not the URL
    log = [
        json.loads(line)
        for line in (data / "logs" / "gateway.log").read_text().splitlines()
        if line.startswith("{")
    ]
    unreachable = [line for line in log if line.get("event") == "model server unreachable"]
    assert unreachable and unreachable[0]["provider"] == "openai"
    assert unreachable[0]["base_url"] == model_url
    assert key not in (data / "logs" / "gateway.log").read_text()
