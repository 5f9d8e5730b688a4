"""Sign-in rules of the admin pages over HTTP against a real instance server on loopback (the
browser tests in tests/e2e/test_admin_pages.py drive the same pages in Chromium): argon2 at
rest, lockout and its end, the per-address limit, session expiry and sign-out, Secure cookies
behind HTTPS, no open redirect, and admins only for a session that is already open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from codesuggest.instance import admin, sign_in
from codesuggest.instance import cli as instance_cli
from codesuggest.instance.app import create_app
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.models import User
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import open_store
from codesuggest.tokens import ManualClock
from instance.harness import free_port
from support.servers import ServerThread

PASSWORD = "correct horse battery staple"


@dataclass
class Running:
    url: str
    clock: ManualClock
    ctx: InstanceContext

    def user(self, name: str, is_admin: bool = True) -> str:
        with self.ctx.store.session() as session:
            admin.create_user(session, name, datetime.now(UTC), admin=is_admin)
            sign_in.set_password(session, name, PASSWORD)
        return name


@contextmanager
def serving(tmp: Path, **overrides: object) -> Iterator[Running]:
    """An instance server on loopback with these settings, stopped afterwards."""
    port = free_port()
    options = {
        "url": f"http://127.0.0.1:{port}",
        "data_dir": tmp,
        "secret": "instance-test-secret-0123456789abcdef",
        "sync_enabled": False,
        "usage_sink_enabled": False,
    } | overrides
    clock = ManualClock()
    app = create_app(InstanceSettings(**options), clock=clock)
    server = ServerThread(app, port=port).start()
    try:
        yield Running(f"http://127.0.0.1:{port}", clock, app.state.ctx)
    finally:
        server.stop()
        app.state.ctx.store.dispose()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serving(tmp_path_factory.mktemp("admin-sign-in")) as started:
        yield started


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field"
    return found.group(1)


def post_sign_in(
    http: httpx.Client, username: str, password: str, next_path: str = ""
) -> httpx.Response:
    form = http.get("/admin/sign_in")
    return http.post(
        "/admin/sign_in",
        data={
            "csrf_token": hidden(form.text, "csrf_token"),
            "username": username,
            "password": password,
            "next": next_path,
        },
    )


def test_passwords_are_stored_as_argon2id_hashes_and_short_ones_are_refused(running):
    running.user("hashed")
    with running.ctx.store.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == "hashed"))
        assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
        with pytest.raises(admin.AdminError, match="at least 12"):
            sign_in.set_password(session, "hashed", "short")


def test_a_lockout_ends_after_its_time_and_a_session_after_its_lifetime(running):
    name = running.user("lock-then-wait")
    with httpx.Client(base_url=running.url) as http:
        for _ in range(5):
            post_sign_in(http, name, "wrong")
        assert post_sign_in(http, name, PASSWORD).status_code == 429
        running.clock.advance(901)
        signed_in = post_sign_in(http, name, PASSWORD)
        assert signed_in.status_code == 303
        assert http.get("/admin/users").status_code == 200
        running.clock.advance(12 * 3600 + 1)
        expired = http.get("/admin/users")
        assert expired.status_code == 303 and "/admin/sign_in" in expired.headers["location"]


def test_signing_out_ends_the_session_on_the_server(running):
    name = running.user("leaver")
    with httpx.Client(base_url=running.url) as http:
        post_sign_in(http, name, PASSWORD)
        cookie = http.cookies.get("codesuggest_admin", path="/admin")
        page = http.get("/admin/users")
        out = http.post("/admin/sign_out", data={"csrf_token": hidden(page.text, "csrf_token")})
        assert out.status_code == 303
    with httpx.Client(base_url=running.url) as replay:
        replay.cookies.set("codesuggest_admin", cookie, path="/admin")
        assert replay.get("/admin/users").status_code == 303


def test_an_open_session_stops_working_once_its_admin_is_blocked_or_demoted(running):
    blocked, demoted = running.user("soon-blocked"), running.user("soon-demoted")
    with httpx.Client(base_url=running.url) as a, httpx.Client(base_url=running.url) as b:
        post_sign_in(a, blocked, PASSWORD)
        post_sign_in(b, demoted, PASSWORD)
        assert a.get("/admin/seats").status_code == b.get("/admin/seats").status_code == 200
        with running.ctx.store.session() as session:
            admin.set_blocked(session, blocked, datetime.now(UTC))
            session.scalars(select(User).where(User.username == demoted)).one().admin = False
        assert a.get("/admin/seats").status_code == 403
        assert "administrators only" in b.get("/admin/seats").text


def test_sign_in_goes_only_to_a_page_of_the_admin_pages(running):
    name = running.user("redirected")
    for target, expected in (
        ("/admin/seats", "/admin/seats"),
        ("https://elsewhere.example/admin/", "/admin/dashboard"),
        ("//elsewhere.example/admin/", "/admin/dashboard"),
    ):
        with httpx.Client(base_url=running.url) as http:
            reply = post_sign_in(http, name, PASSWORD, target)
            assert (reply.status_code, reply.headers["location"]) == (303, expected)


def test_sign_in_needs_the_form_token_of_its_own_cookie(running):
    name = running.user("no-double-submit")
    with httpx.Client(base_url=running.url) as http:
        http.get("/admin/sign_in")
        forged = http.post(
            "/admin/sign_in", data={"csrf_token": "made-up", "username": name, "password": PASSWORD}
        )
        assert forged.status_code == 403
        assert "codesuggest_admin=" not in forged.headers.get("set-cookie", "")
        assert http.get("/admin/users").status_code == 303


def test_attempts_per_address_are_limited_whatever_the_username(tmp_path):
    with serving(tmp_path, admin_sign_in_per_minute=3) as limited:
        with httpx.Client(base_url=limited.url) as http:
            codes = [post_sign_in(http, f"nobody{i}", "x").status_code for i in range(4)]
            assert codes == [401, 401, 401, 429]
            refused = post_sign_in(http, "nobody", "x")
            assert int(refused.headers["retry-after"]) >= 1


def test_cookies_are_secure_when_the_instance_is_served_over_https(tmp_path):
    with serving(tmp_path, url="https://code.example") as behind_tls:
        behind_tls.user("tls-admin")
        with httpx.Client(base_url=behind_tls.url) as http:
            form = http.get("/admin/sign_in")
            assert "secure" in form.headers["set-cookie"].lower()
            # httpx keeps a Secure cookie to itself over plain HTTP: hand it back by hand.
            http.cookies.set(
                "codesuggest_admin_csrf", hidden(form.text, "csrf_token"), path="/admin"
            )
            reply = http.post(
                "/admin/sign_in",
                data={
                    "csrf_token": hidden(form.text, "csrf_token"),
                    "username": "tls-admin",
                    "password": PASSWORD,
                },
            )
        session_cookie = next(
            v for k, v in reply.headers.multi_items() if v.startswith("codesuggest_admin=")
        )
        flags = {part.strip().lower() for part in session_cookie.split(";")}
        assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= flags


def test_the_cli_sets_a_password_from_stdin_and_refuses_a_short_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESUGGEST_INSTANCE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert (
        runner.invoke(instance_cli.app, ["users", "create", "cli-admin", "--admin"]).exit_code == 0
    )
    short = runner.invoke(
        instance_cli.app, ["users", "password", "cli-admin", "--stdin"], "short\n"
    )
    assert short.exit_code == 1 and "at least 12" in short.output
    done = runner.invoke(
        instance_cli.app, ["users", "password", "cli-admin", "--stdin"], f"{PASSWORD}\n"
    )
    assert done.exit_code == 0, done.output
    store = open_store(InstanceSettings())
    try:
        with store.session() as session:
            checked = sign_in.check_password(
                session,
                "cli-admin",
                PASSWORD,
                datetime.now(UTC),
                max_failures=5,
                lockout=timedelta(minutes=15),
            )
        assert (checked.outcome, checked.admin) == ("ok", True)
    finally:
        store.dispose()
