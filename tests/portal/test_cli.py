"""`codesuggest portal ...` commands on a SQLite data directory, and `serve` as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from codesuggest.portal.app import create_app
from codesuggest.portal.cli import app
from codesuggest.portal.settings import PortalSettings
from portal.helpers import free_port, instance_headers

runner = CliRunner()


def cli(data_dir: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == code, result.output
    return result.output


def test_license_and_addon_lifecycle(tmp_path: Path) -> None:
    created = json.loads(cli(tmp_path, "licenses", "create", "--customer", "Acme", "--json"))
    assert created["customer"] == "Acme"
    assert created["license_key"].startswith("cslk_")
    assert (created["cloud"], created["trial"], created["grace_period_days"]) == (True, False, 14)
    cli(tmp_path, "addons", "add", str(created["id"]), "--seats", "7", "--days", "30")

    [listed] = json.loads(cli(tmp_path, "licenses", "list", "--json"))
    assert listed["id"] == created["id"]
    assert listed["revoked_at"] is None
    assert [(a["name"], a["seats"]) for a in listed["addons"]] == [("code_suggestions", 7)]
    assert "license_key" not in listed
    assert created["license_key"] not in cli(tmp_path, "licenses", "list")

    assert "Removed 1 code_suggestions" in cli(tmp_path, "addons", "remove", str(created["id"]))
    assert "License 1 revoked" in cli(tmp_path, "licenses", "revoke", str(created["id"]))
    [listed] = json.loads(cli(tmp_path, "licenses", "list", "--json"))
    assert listed["addons"] == []
    assert listed["revoked_at"] is not None


def test_license_options(tmp_path: Path) -> None:
    created = json.loads(
        cli(tmp_path, "licenses", "create", "--trial", "--no-cloud", "--days", "10",
            "--grace-days", "0", "--json")
    )  # fmt: skip
    assert (created["cloud"], created["trial"], created["grace_period_days"]) == (False, True, 0)
    starts, expires = (created[k] for k in ("starts_at", "expires_at"))
    delta = datetime.fromisoformat(expires) - datetime.fromisoformat(starts)
    assert delta.days == 10


def test_admin_errors_exit_1_with_a_message(tmp_path: Path) -> None:
    assert "no license with id 99" in cli(tmp_path, "licenses", "revoke", "99", code=1)
    assert "no license with id 99" in cli(tmp_path, "addons", "add", "99", code=1)
    cli(tmp_path, "licenses", "create")
    assert "unknown add-on 'bogus'" in cli(
        tmp_path, "addons", "add", "1", "--name", "bogus", code=1
    )
    assert "has no 'code_suggestions' add-on" in cli(tmp_path, "addons", "remove", "1", code=1)
    assert "no published key to rotate to" in cli(tmp_path, "keys", "rotate", code=1)


def test_key_rotation_from_the_cli(tmp_path: Path) -> None:
    settings = PortalSettings(data_dir=tmp_path)
    portal = create_app(settings)  # first start: creates the signing key
    [first] = json.loads(cli(tmp_path, "keys", "list", "--json"))
    assert first["state"] == "signing"
    license = portal.state.ctx.admin.create_license()
    portal.state.ctx.admin.add_addon(license.id)
    grant = portal.state.ctx.access.check(license.key, "17.0", instance_headers("cli-instance"))
    assert grant.service_token is not None and grant.service_token.kid == first["kid"]

    assert "Published key" in cli(tmp_path, "keys", "create")
    output = cli(tmp_path, "keys", "rotate")
    assert f"Retired {first['kid']}" in output
    states = {k["kid"]: k["state"] for k in json.loads(cli(tmp_path, "keys", "list", "--json"))}
    assert states[first["kid"]] == "retired"
    assert sorted(states.values()) == ["retired", "signing"]

    assert "refusing to trim" in cli(tmp_path, "keys", "trim", code=1)
    assert f"Removed {first['kid']}" in cli(tmp_path, "keys", "trim", "--force")
    assert [k["state"] for k in json.loads(cli(tmp_path, "keys", "list", "--json"))] == ["signing"]
    portal.state.ctx.admin.close()


def test_database_url_falls_back_to_plain_database_url(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CODESUGGEST_PORTAL_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'plain.db'}")
    assert PortalSettings().effective_database_url == f"sqlite:///{tmp_path / 'plain.db'}"
    monkeypatch.setenv("CODESUGGEST_PORTAL_DATABASE_URL", "sqlite:///prefixed.db")
    assert PortalSettings().effective_database_url == "sqlite:///prefixed.db"
    monkeypatch.delenv("CODESUGGEST_PORTAL_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL")
    settings = PortalSettings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'portal.db'}"


def test_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = PortalSettings(data_dir=tmp_path / "data")
    first = settings.resolve_secret()
    assert len(first) >= 32
    assert (tmp_path / "data" / "portal.secret").stat().st_mode & 0o777 == 0o600
    assert PortalSettings(data_dir=tmp_path / "data").resolve_secret() == first
    explicit = PortalSettings(data_dir=tmp_path / "data", secret="s" * 32)
    assert explicit.resolve_secret() == "s" * 32


@pytest.mark.timeout(60)
def test_serve_runs_the_portal(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODESUGGEST_PORTAL_")}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from codesuggest.portal.cli import app; app()",
         "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "portal did not start"
                time.sleep(0.05)
        assert response.json()["issuer"] == f"http://127.0.0.1:{port}"
        assert (tmp_path / "portal.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=15)
