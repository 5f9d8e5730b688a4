"""Admin functions, the CLI, instance settings and the SaaS signing keys."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from codesuggest.instance import admin, keys, seats
from codesuggest.instance.app import create_app
from codesuggest.instance.cli import app as cli
from codesuggest.instance.identity import global_user_id
from codesuggest.instance.models import utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from codesuggest.tokens import RemoteKeySet, Verifier
from instance.harness import database_url
from support.servers import ServerThread

SECRET = "admin-test-secret-0123456789abcdef"


def now():  # type: ignore[no-untyped-def]
    return utc(time.time())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("admin-db")) as url:
        yield url


@pytest.fixture(scope="module")
def store(db_url: str, tmp_path_factory) -> Iterator[Store]:
    store = open_store(
        InstanceSettings(
            database_url=db_url, data_dir=tmp_path_factory.mktemp("admin"), secret=SECRET
        )
    )
    yield store
    store.dispose()


def dump(store: Store) -> str:
    """Every value of every table, as text."""
    out = []
    with store.session() as s:
        for table in (
            "users",
            "personal_access_tokens",
            "service_access_tokens",
            "cloud_connector_keys",
            "application_settings",
        ):
            out += [repr(tuple(r)) for r in s.execute(text(f"SELECT * FROM {table}"))]
    return "\n".join(out)


def test_pat_is_stored_only_as_a_hash(store: Store) -> None:
    with store.session() as s:
        admin.create_user(s, "hash-user", now())
        new = admin.create_token(s, "hash-user", now(), ["api", "read_api"], 7)
    assert new.token.startswith("glpat-")
    stored = dump(store)
    assert new.token not in stored
    assert new.token.removeprefix("glpat-") not in stored
    assert hashlib.sha256(new.token.encode()).hexdigest() in stored


def test_token_scopes_and_days_are_validated(store: Store) -> None:
    with store.session() as s:
        admin.create_user(s, "scope-user", now())
    for scopes, days in ((["write_repository"], 1), ([], 1), (["api"], 0)):
        with pytest.raises(admin.AdminError), store.session() as s:
            admin.create_token(s, "scope-user", now(), scopes, days)


def test_assigning_past_the_seat_count_is_refused(store: Store) -> None:
    with store.session() as s:
        for name in ("seat-a", "seat-b", "seat-c"):
            admin.create_user(s, name, now())
        seats.purchase(s, 2, now())
        seats.assign(s, "seat-a", now())
        seats.assign(s, "seat-b", now())
    with pytest.raises(seats.SeatError, match="all 2 code_suggestions seats are assigned"):
        with store.session() as s:
            seats.assign(s, "seat-c", now())
    with pytest.raises(seats.SeatError, match="2 seats are assigned"), store.session() as s:
        seats.purchase(s, 1, now())
    with store.session() as s:
        assert seats.unassign(s, "seat-b", now())
        seats.assign(s, "seat-c", now())
        listing = seats.list_seats(s)
    assert listing == [
        {"group": None, "seats": 2, "licensed": None, "assigned": ["seat-a", "seat-c"]}
    ]


def test_saas_seats_need_group_membership(store: Store) -> None:
    with store.session() as s:
        admin.create_user(s, "member", now())
        admin.create_user(s, "outsider", now())
        admin.create_group(s, "saas-group")
        admin.add_member(s, "saas-group", "member")
        seats.purchase(s, 5, now(), "saas-group")
        seats.assign(s, "member", now(), "saas-group")
        member_id = admin._user(s, "member").id
    with pytest.raises(seats.SeatError, match="not a member"), store.session() as s:
        seats.assign(s, "outsider", now(), "saas-group")
    with store.session() as s:
        assert seats.has_seat(s, member_id, "saas")
        assert not seats.has_seat(s, member_id, "self-managed")  # the group seat is SaaS only


def test_global_user_id_is_opaque_and_per_instance() -> None:
    a = global_user_id(SECRET, "instance-1", 7)
    assert a == global_user_id(SECRET, "instance-1", 7)
    assert a != global_user_id(SECRET, "instance-2", 7)
    assert a != global_user_id("another-secret-0123456789", "instance-1", 7)
    assert "7" != a and len(a) == 43  # base64url of 32 bytes, unpadded


def test_settings_seeded_once_then_only_explicit_values_override(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    first = open_store(
        InstanceSettings(database_url=url, data_dir=tmp_path, realm="saas", version="17.1.0")
    )
    with first.session() as s:
        uuid = application_settings(s).instance_uuid
        admin.set_setting(s, "disabled_direct_code_suggestions", "true")
    first.dispose()
    again = open_store(InstanceSettings(database_url=url, data_dir=tmp_path, version="17.2.0"))
    with again.session() as s:
        row = application_settings(s)
        assert row.instance_uuid == uuid
        assert row.realm == "saas"  # not set this time: the stored value stays
        assert row.version == "17.2.0"  # set explicitly: overrides
        assert row.disabled_direct_code_suggestions is True
    again.dispose()
    assert (tmp_path / "instance.secret").stat().st_mode & 0o777 == 0o600


def test_settings_values_are_validated(store: Store) -> None:
    for key, value in (("realm", "moon"), ("nope", "x"), ("disabled_direct_code_suggestions", "?")):
        with pytest.raises(admin.AdminError), store.session() as s:
            admin.set_setting(s, key, value)


@pytest.fixture
def saas_server(tmp_path: Path) -> Iterator[tuple[ServerThread, Store]]:
    from instance.harness import free_port

    port = free_port()
    app = create_app(
        InstanceSettings(
            url=f"http://127.0.0.1:{port}",
            database_url=f"sqlite:///{tmp_path / 'saas.db'}",
            data_dir=tmp_path,
            realm="saas",
            secret=SECRET,
        )
    )
    with ServerThread(app, port=port) as server:
        yield server, app.state.ctx.store
    app.state.ctx.store.dispose()


def test_key_rotation_keeps_old_tokens_verifiable(saas_server) -> None:  # type: ignore[no-untyped-def]
    server, store = saas_server
    ring = keys.KeyRing(store.sealer)

    def sign() -> str:
        from codesuggest.tokens import Signer

        with store.session() as s:
            return Signer(ring.signing_key(s), server.url).mint(
                subject="u", audience="gitlab-ai-gateway", lifetime=600
            )[0]

    old_token = sign()
    with store.session() as s:
        old_kid = keys.list_keys(s)[0].kid
        standby = keys.create_key(s, store.sealer, now())
    assert not standby.current
    assert jwt.get_unverified_header(sign())["kid"] == old_kid  # standby does not sign yet
    with pytest.raises(keys.KeyAdminError), store.session() as s:
        keys.create_key(s, store.sealer, now())
    response = httpx.get(server.url + "/oauth/discovery/keys")
    assert response.headers["cache-control"] == "max-age=86400, public"
    assert {k["kid"] for k in response.json()["keys"]} == {old_kid, standby.kid}
    with store.session() as s:
        assert keys.rotate_keys(s).kid == standby.kid
    new_token = sign()
    assert jwt.get_unverified_header(new_token)["kid"] == standby.kid

    async def verify(token: str) -> dict:
        async with httpx.AsyncClient() as http:
            source = RemoteKeySet(server.url, http)
            await source.refresh()
            return await Verifier([source], "gitlab-ai-gateway").verify(token)

    assert asyncio.run(verify(old_token))["iss"] == server.url
    assert asyncio.run(verify(new_token))["iss"] == server.url
    with store.session() as s:
        assert keys.trim_keys(s) == 1
    assert [k["kid"] for k in httpx.get(server.url + "/oauth/discovery/keys").json()["keys"]] == [
        standby.kid
    ]
    discovery = httpx.get(server.url + "/.well-known/openid-configuration").json()
    assert discovery["issuer"] == server.url
    assert discovery["jwks_uri"] == server.url + "/oauth/discovery/keys"
    assert "BEGIN" not in dump(store) and "PRIVATE" not in dump(store)


def test_api_user_version_and_admin_settings(saas_server) -> None:  # type: ignore[no-untyped-def]
    server, store = saas_server
    with store.session() as s:
        admin.create_user(s, "root", now(), admin=True)
        admin.create_user(s, "dev", now())
        root = admin.create_token(s, "root", now()).token
        root_read = admin.create_token(s, "root", now(), ["read_api"]).token
        dev = admin.create_token(s, "dev", now()).token
    with httpx.Client(base_url=server.url) as c:
        me = c.get("/api/v4/user", headers={"PRIVATE-TOKEN": dev}).json()
        assert (me["username"], me["is_admin"], me["state"]) == ("dev", False, "active")
        version = c.get("/api/v4/version", headers={"Authorization": f"Bearer {root_read}"})
        assert version.json() == {"version": "18.3.0", "revision": "codesuggest"}
        assert c.get("/api/v4/version").status_code == 401
        put = "/api/v4/application/settings"
        body = {"disabled_direct_code_suggestions": True}
        assert c.put(put, json=body).status_code == 401
        refused = c.put(put, json=body, headers={"PRIVATE-TOKEN": dev})
        assert refused.status_code == 403 and refused.headers["X-GitLab-Error-Origin"] == "monolith"
        read_only = c.put(put, json=body, headers={"PRIVATE-TOKEN": root_read})
        assert read_only.json()["error"] == "insufficient_scope"
        assert c.put(put, json={"bogus": 1}, headers={"PRIVATE-TOKEN": root}).status_code == 400
        ok = c.put(put, json=body, headers={"PRIVATE-TOKEN": root})
        assert ok.status_code == 200 and ok.json()["disabled_direct_code_suggestions"] is True
        ok = c.put(put + "?disabled_direct_code_suggestions=false", headers={"PRIVATE-TOKEN": root})
        assert ok.json()["disabled_direct_code_suggestions"] is False
    with store.session() as s:
        assert application_settings(s).disabled_direct_code_suggestions is False


def test_cli_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESUGGEST_INSTANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CODESUGGEST_INSTANCE_REALM", "saas")
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    ok("users", "create", "alice", "--admin")
    ok("groups", "create", "acme")
    ok("groups", "add-member", "acme", "alice")
    ok("seats", "purchase", "--count", "1", "--group", "acme")
    ok("seats", "assign", "alice", "--group", "acme")
    pat = ok("tokens", "create", "alice", "--scopes", "api", "--days", "5").strip()
    assert pat.startswith("glpat-") and "\n" not in pat
    assert "alice" in ok("seats", "list")
    ok("settings", "set", "disabled_direct_code_suggestions", "true")
    assert '"disabled_direct_code_suggestions": true' in ok("settings", "show")
    ok("keys", "create")
    assert len(ok("keys", "list").splitlines()) == 1
    ok("keys", "create")
    ok("keys", "rotate")
    assert "removed 1" in ok("keys", "trim")
    ok("users", "create", "bob")
    refused = runner.invoke(cli, ["seats", "assign", "bob", "--group", "acme"])
    assert refused.exit_code == 1 and "not a member" in refused.output
    ok("users", "block", "alice")
    assert "blocked" in ok("users", "list")
    ok("tokens", "revoke", "1")
    assert "revoked" in ok("tokens", "list", "alice")
    store = open_store(InstanceSettings(data_dir=tmp_path))
    assert pat not in dump(store)
    store.dispose()


def test_usage_sink_is_served_by_the_instance_app(saas_server) -> None:  # type: ignore[no-untyped-def]
    server, _ = saas_server
    refused = httpx.post(server.url + "/api/v4/usage/events", json={"events": []})
    assert refused.status_code == 401
    assert refused.json() == {"message": "401 Unauthorized"}
    assert httpx.get(server.url + "/api/v4/usage/report").status_code == 401


def test_monitoring(saas_server) -> None:  # type: ignore[no-untyped-def]
    server, _ = saas_server
    assert httpx.get(server.url + "/monitoring/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/monitoring/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "realm": "saas", "instance_token": True}
    missing = httpx.get(server.url + "/api/v4/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["X-GitLab-Error-Origin"] == "monolith"
