"""Token sync against the real portal on loopback (docs/contracts.md sections 3 and 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import delete, select, text
from typer.testing import CliRunner

from codesuggest.instance.cli import app as cli
from codesuggest.instance.models import ServiceAccessToken, utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from codesuggest.instance.sync import SyncResult, SyncScheduler, newest_live_token, sync_once
from codesuggest.tokens import ManualClock
from instance.harness import Portal, database_url, free_port, start_portal
from instance.logcapture import Captured, capture_logs, release
from support.issuer import wait_until
from support.servers import ServerThread

DAY = 86400.0


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    portal = start_portal(tmp_path_factory.mktemp("sync-portal"))
    yield portal
    portal.server.stop()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("sync-db")) as url:
        yield url


@pytest.fixture(scope="module")
def license(db_url: str, portal: Portal) -> tuple[str, int]:
    """One license per instance database: each database is another instance."""
    return portal.new_license()


@pytest.fixture(scope="module")
def settings(
    db_url: str, portal: Portal, license: tuple[str, int], tmp_path_factory
) -> InstanceSettings:
    return InstanceSettings(
        database_url=db_url,
        data_dir=tmp_path_factory.mktemp("sync-data"),
        secret="sync-test-secret-0123456789abcdef",
        portal_url=portal.server.url,
        license_key=license[0],
        portal_timeout=2.0,
    )


@pytest.fixture(scope="module")
def store(settings: InstanceSettings) -> Iterator[Store]:
    store = open_store(settings)
    yield store
    store.dispose()


@pytest.fixture(autouse=True)
def empty(store: Store) -> None:
    with store.session() as s:
        s.execute(delete(ServiceAccessToken))


@pytest.fixture
def logs() -> Iterator[Captured]:
    handler = capture_logs()
    yield handler
    release(handler)


def run(store: Store, settings: InstanceSettings, clock: ManualClock, force: bool = False):  # type: ignore[no-untyped-def]
    async def once() -> SyncResult:
        async with httpx.AsyncClient() as http:
            return await sync_once(store, settings, http, clock, force=force)

    return asyncio.run(once())


def rows(store: Store) -> list[tuple[str, object]]:
    with store.session() as s:
        return [
            (r.token_sealed, r.expires_at)
            for r in s.scalars(select(ServiceAccessToken).order_by(ServiceAccessToken.id))
        ]


def live(store: Store, clock: ManualClock) -> str | None:
    with store.session() as s:
        return newest_live_token(s, clock.now())


def test_first_sync_stores_the_portal_token_sealed(store, settings, portal) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    calls = portal.graphql_calls
    result = run(store, settings, clock)
    assert result.outcome == "stored"
    assert portal.graphql_calls == calls + 1
    token = live(store, clock)
    claims = jwt.decode(token, options={"verify_signature": False})
    with store.session() as s:
        app = application_settings(s)
        assert claims["sub"] == app.instance_uuid
        assert claims["iss"] == portal.server.url
        assert claims["gitlab_realm"] == "self-managed"
        sent = portal.counter.last_headers["/graphql"]
        assert sent["x-gitlab-instance-id"] == app.instance_uuid
        assert sent["x-gitlab-host-name"] == app.host_name
        assert sent["x-gitlab-realm"] == "self-managed"
        assert sent["x-gitlab-version"] == app.version
        raw = s.execute(text("SELECT token_sealed FROM service_access_tokens")).scalars().all()
    assert len(raw) == 1 and token not in raw[0] and claims["jti"] not in raw[0]
    assert result.expires_at == utc(claims["exp"])


def test_a_token_with_more_than_2_days_left_is_kept_without_asking(store, settings, portal):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    run(store, settings, clock)
    calls = portal.graphql_calls
    clock.advance(0.9 * DAY)  # 2.1 days left
    result = run(store, settings, clock)
    assert result.outcome == "skipped"
    assert portal.graphql_calls == calls
    assert len(rows(store)) == 1


def test_under_2_days_left_or_forced_fetches_a_new_token(store, settings, portal) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    run(store, settings, clock)
    first = live(store, clock)
    clock.advance(1.1 * DAY)  # 1.9 days left
    calls = portal.graphql_calls
    assert run(store, settings, clock).outcome == "stored"
    assert run(store, settings, clock, force=True).outcome == "stored"
    assert portal.graphql_calls == calls + 2
    assert live(store, clock) != first
    assert len(rows(store)) == 3  # older live tokens stay until they expire


def test_expired_tokens_are_deleted(store, settings) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    with store.session() as s:
        s.add(
            ServiceAccessToken(
                token_sealed=store.sealer.seal("a.b.c"),
                expires_at=utc(clock.now()) - timedelta(hours=1),
                created_at=utc(clock.now()) - timedelta(days=3),
            )
        )
    assert live(store, clock) is None
    assert run(store, settings, clock).outcome == "stored"
    remaining = rows(store)
    assert len(remaining) == 1 and remaining[0][1] > utc(clock.now())


def test_no_add_on_deletes_every_token(store, settings, portal, license) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    run(store, settings, clock)
    portal.admin.remove_addon(license[1])
    try:
        result = run(store, settings, clock, force=True)
    finally:
        portal.admin.add_addon(license[1], seats=100)
    assert result.outcome == "cleared"
    assert rows(store) == []


def _failing(store, settings, clock, logs: Captured, **changes) -> SyncResult:  # type: ignore[no-untyped-def]
    run(store, settings, clock)
    before = rows(store)
    result = run(store, settings.model_copy(update=changes), clock, force=True)
    assert result.outcome == "failed"
    assert rows(store) == before  # nothing stored changed
    assert result.reason in logs.text
    assert settings.license_key not in logs.text
    assert live(store, clock) not in logs.text
    return result


def test_unknown_license_changes_nothing(store, settings, logs) -> None:  # type: ignore[no-untyped-def]
    result = _failing(store, settings, ManualClock(), logs, license_key="not-a-real-license-key")
    assert result.reason.startswith("portal refused: ")
    assert "not-a-real-license-key" not in logs.text


def test_portal_down_changes_nothing(store, settings, logs) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    result = _failing(store, settings, ManualClock(), logs, portal_url=url)
    assert result.reason == f"portal at {url} unreachable (ConnectError)"
    logged = [line for line in logs.lines if "token sync failed" in line]
    assert len(logged) == 1 and url in logged[0]


def test_portal_timeout_changes_nothing(store, settings, logs) -> None:  # type: ignore[no-untyped-def]
    from instance.slow_gateway import SlowGateway

    slow = SlowGateway(path="/graphql")
    try:
        result = _failing(
            store, settings, ManualClock(), logs, portal_url=slow.url, portal_timeout=0.3
        )
    finally:
        slow.stop()
    assert result.reason == f"portal at {slow.url} timed out (ReadTimeout)"


def test_scheduler_retries_with_back_off_until_the_portal_answers(store, settings, portal) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    attempts: list[str] = []

    async def attempt() -> SyncResult:
        async with httpx.AsyncClient() as http:
            result = await sync_once(store, settings, http, clock)
        attempts.append(result.outcome)
        return result

    async def scenario() -> None:
        portal.server.stop()
        scheduler = SyncScheduler(attempt, interval=3600, retry_initial=0.02)
        scheduler.start()
        try:
            await _until(lambda: len(attempts) >= 3)
            await asyncio.to_thread(portal.server.start)  # same port
            await _until(lambda: "stored" in attempts)
        finally:
            await scheduler.aclose()
            if portal.server._server is None:
                portal.server.start()

    asyncio.run(scenario())
    assert attempts[:3] == ["failed"] * 3
    assert attempts[-1] == "stored" and live(store, clock) is not None


async def _until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def test_cli_sync_force(store, settings, monkeypatch, portal) -> None:  # type: ignore[no-untyped-def]
    for key, value in {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "SECRET": settings.secret,
        "PORTAL_URL": portal.server.url,
        "LICENSE_KEY": settings.license_key,
    }.items():
        monkeypatch.setenv(f"CODESUGGEST_INSTANCE_{key}", value)
    result = CliRunner().invoke(cli, ["sync", "--force"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("stored: ")
    assert settings.license_key not in result.output
    assert len(rows(store)) == 1


def _own_instance(tmp_path: Path, name: str, portal_url: str, **changes: Any) -> InstanceSettings:
    """Settings of an instance with its own SQLite database in `tmp_path`."""
    return InstanceSettings(
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        data_dir=tmp_path,
        secret=f"{name}-test-secret-0123456789abcdef",
        portal_url=portal_url,
        **changes,
    )


def test_the_server_runs_the_sync_job_on_start(settings, portal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from codesuggest.instance.app import create_app

    app = create_app(
        _own_instance(
            tmp_path,
            "job",
            portal.server.url,
            license_key=portal.new_license()[0],
            sync_retry_initial=0.05,
        )
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        wait_until(
            lambda: client.get("/monitoring/ready").json()["instance_token"],
            what="the sync job to store a token",
        )
    app.state.ctx.store.dispose()


def _readiness(client: httpx.Client) -> httpx.Response:
    return client.get("/monitoring/ready")


def test_not_ready_until_the_first_token_then_ready_through_failed_syncs(  # type: ignore[no-untyped-def]
    portal, tmp_path: Path
) -> None:
    from codesuggest.instance.app import create_app

    clock = ManualClock()
    license_key, _ = portal.new_license()
    portal.server.stop()
    app = create_app(
        _own_instance(
            tmp_path,
            "ready",
            portal.server.url,
            license_key=license_key,
            sync_retry_initial=0.05,
            sync_interval=0.05,
        ),
        clock,
    )
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
            wait_until(lambda: "sync failed" in _readiness(client).text, what="a failed sync")
            down = _readiness(client)
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            assert down.json() == {
                "status": "not ready",
                "realm": "self-managed",
                "instance_token": False,
                "error": "no instance token: the last token sync failed: "
                f"portal at {portal.server.url} unreachable (ConnectError)",
            }
            portal.server.start()  # the same port
            wait_until(lambda: _readiness(client).status_code == 200, what="readiness")
            assert _readiness(client).json() == {
                "status": "ok",
                "realm": "self-managed",
                "instance_token": True,
            }
            # The portal goes away again and the token nears its refresh: syncs fail, but the
            # live token keeps the instance ready, and the body says what failed.
            portal.server.stop()
            clock.advance(1.1 * DAY)
            wait_until(lambda: "sync_error" in _readiness(client).json(), what="a failed sync")
            held = _readiness(client)
            assert held.status_code == 200 and held.json()["instance_token"] is True
            assert portal.server.url in held.json()["sync_error"]
    finally:
        if portal.server._server is None:
            portal.server.start()
        app.state.ctx.store.dispose()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, "no license key configured (CODESUGGEST_INSTANCE_LICENSE_KEY)"),
        (
            {"license_key": "cslk_unused", "sync_enabled": False},
            "the token sync is off here: run `codesuggest instance sync`",
        ),
    ],
)
def test_not_ready_without_a_way_to_get_a_token(tmp_path: Path, changes, why: str) -> None:  # type: ignore[no-untyped-def]
    from codesuggest.instance.app import create_app

    app = create_app(_own_instance(tmp_path, "none", f"http://127.0.0.1:{free_port()}", **changes))
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
            reply = _readiness(client)
        assert reply.status_code == 503
        assert reply.json()["error"] == f"no instance token: {why}"
    finally:
        app.state.ctx.store.dispose()
