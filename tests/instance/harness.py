"""Real parts on loopback for the instance tests: portal, gateway and instance servers, each
with its own database (SQLite file or a throwaway PostgreSQL database)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from codesuggest.gateway.app import create_app as create_gateway
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from codesuggest.instance import admin, seats
from codesuggest.instance.app import create_app
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.models import utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.sync import SyncResult, sync_once
from codesuggest.portal.app import create_app as create_portal
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import ManualClock
from support.databases import postgres_database
from support.servers import ServerThread, free_port


@contextlib.contextmanager
def database_url(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "postgres":
        with postgres_database("cs_instance") as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'instance.db'}"


class CountingApp:
    """Pure ASGI wrapper counting requests by path (after nothing rewrites them)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.counts: Counter[str] = Counter()
        self.last_headers: dict[str, dict[str, str]] = {}

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            self.counts[scope["path"]] += 1
            self.last_headers[scope["path"]] = {
                k.decode().lower(): v.decode() for k, v in scope["headers"]
            }
        await self.app(scope, receive, send)


@dataclass
class Portal:
    server: ServerThread
    counter: CountingApp
    admin: object
    license_key: str
    license_id: int

    @property
    def graphql_calls(self) -> int:
        return self.counter.counts["/graphql"]

    def new_license(self) -> tuple[str, int]:
        """Another license with the add-on (key, id): a license serves the one instance it
        first synced from."""
        license = self.admin.create_license()  # type: ignore[attr-defined]
        self.admin.add_addon(license.id, seats=100)  # type: ignore[attr-defined]
        return str(license.key), int(license.id)


def start_portal(tmp: Path) -> Portal:
    port = free_port()
    settings = PortalSettings(
        url=f"http://127.0.0.1:{port}",
        data_dir=tmp / "portal",
        database_url=f"sqlite:///{tmp / 'portal.db'}",
        secret="portal-test-secret-0123456789",
    )
    app = create_portal(settings)
    portal_admin = app.state.ctx.admin
    license = portal_admin.create_license()
    portal_admin.add_addon(license.id, seats=100)
    counter = CountingApp(app)
    server = ServerThread(counter, port=port).start()
    return Portal(server, counter, portal_admin, license.key, license.id)


@dataclass
class Stack:
    realm: str
    backend: str
    clock: ManualClock
    portal: Portal
    gateway: ServerThread
    gateway_app: object
    gateway_counter: CountingApp
    instance: ServerThread
    settings: InstanceSettings
    ctx: InstanceContext
    gateway_settings: GatewaySettings | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.instance.url, timeout=15)

    @property
    def mints(self) -> int:
        return self.gateway_counter.counts["/auth/v1/code/user_access_token"]

    def gateway_calls(self) -> int:
        """Requests that mint or complete; not what the instance sends in the background (the
        usage sink's key fetches, revocation pushes): they would make counts flaky."""
        background = ("/.well-known/", "/oauth/", "/monitoring/", "/ai/v1/code/user_token_")
        return sum(
            n for path, n in self.gateway_counter.counts.items() if not path.startswith(background)
        )

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.ctx.store

    def now(self):  # type: ignore[no-untyped-def]
        return utc(self.clock.now())

    def user(
        self,
        scopes: tuple[str, ...] = ("api",),
        seat: bool = True,
        admin_: bool = False,
        days: int | None = 30,
    ) -> str:
        """A new user (with a seat unless told otherwise) and a PAT for it."""
        name = f"u{uuid.uuid4().hex[:10]}"
        group = "acme" if self.realm == "saas" else None
        with self.store.session() as s:
            admin.create_user(s, name, self.now(), admin=admin_)
            if group:
                admin.add_member(s, group, name)
        if seat:
            with self.store.session() as s:
                seats.assign(s, name, self.now(), group)
        with self.store.session() as s:
            return admin.create_token(s, name, self.now(), scopes, days).token

    def set(self, key: str, value: object) -> None:
        with self.store.session() as s:
            admin.set_setting(s, key, value)

    def sync(self, force: bool = False) -> SyncResult:
        async def once() -> SyncResult:
            async with httpx.AsyncClient() as http:
                return await sync_once(self.store, self.settings, http, self.clock, force)

        return asyncio.run(once())

    def direct_access(self, pat: str | None, **headers: str) -> httpx.Response:
        if pat is not None:
            headers["PRIVATE-TOKEN"] = pat
        return self.http.post("/api/v4/code_suggestions/direct_access", headers=headers)

    def close(self) -> None:
        self.http.close()
        self.instance.stop()
        self.gateway.stop()
        self.portal.server.stop()
        self.ctx.store.dispose()


def start_stack(  # type: ignore[no-untyped-def]
    tmp: Path,
    db_url: str,
    realm: str,
    backend: str,
    gateway_options: dict[str, object] | None = None,
    extra_issuers: tuple[TrustedIssuer, ...] = (),
    **overrides: object,
) -> Stack:
    """Portal, gateway and instance; `gateway_options` are extra gateway settings and
    `extra_issuers` more issuers the gateway trusts."""
    portal = start_portal(tmp)
    instance_port, gateway_port = free_port(), free_port()
    instance_url = f"http://127.0.0.1:{instance_port}"
    issuers = [TrustedIssuer(url=portal.server.url, kind="portal"), *extra_issuers]
    if realm == "saas":
        issuers.append(TrustedIssuer(url=instance_url, kind="saas-instance"))
    clock = ManualClock()
    options = {
        "url": instance_url,
        "data_dir": tmp / "instance",
        "database_url": db_url,
        "secret": "instance-test-secret-0123456789abcdef",
        "realm": realm,
        "gateway_url": f"http://127.0.0.1:{gateway_port}",
        "portal_url": portal.server.url,
        "license_key": portal.license_key,
        "sync_enabled": False,
        "gateway_timeout": 1.0,
    } | overrides
    settings = InstanceSettings(**options)
    app = create_app(settings, clock=clock)
    ctx: InstanceContext = app.state.ctx
    instance = ServerThread(app, port=instance_port).start()
    gateway_settings = GatewaySettings(
        **{
            "trusted_issuers": issuers,
            "data_dir": tmp / "gateway",
            "jwks_retry_max": 0.2,
            "public_url": f"http://127.0.0.1:{gateway_port}",
            **(gateway_options or {}),
        }
    )
    gateway_app = create_gateway(gateway_settings)
    counter = CountingApp(gateway_app)
    gateway = ServerThread(counter, port=gateway_port).start()
    stack = Stack(
        realm,
        backend,
        clock,
        portal,
        gateway,
        gateway_app,
        counter,
        instance,
        settings,
        ctx,
        gateway_settings,
    )
    with stack.store.session() as s:
        if realm == "saas":
            admin.create_group(s, "acme")
            seats.purchase(s, 1000, stack.now(), "acme")
        else:
            seats.purchase(s, 1000, stack.now())
    if realm != "saas":
        result = stack.sync()
        assert result.outcome == "stored", result
    wait_ready(gateway.url)
    return stack


def wait_ready(url: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url) as c:
        while c.get("/monitoring/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready")
            time.sleep(0.02)


STACK_PARAMS = [
    ("sqlite", "self-managed"),
    ("sqlite", "saas"),
    pytest.param(("postgres", "self-managed"), marks=pytest.mark.postgres),
    pytest.param(("postgres", "saas"), marks=pytest.mark.postgres),
]


def stacks(prefix: str, **options: object):  # type: ignore[no-untyped-def]
    """A module-scoped `stack` fixture over every (database, realm), started with `options`."""

    @pytest.fixture(scope="module", params=STACK_PARAMS, ids=lambda p: f"{p[0]}-{p[1]}")
    def stack(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Stack]:
        backend, realm = request.param
        tmp = tmp_path_factory.mktemp(f"{prefix}-{backend}-{realm}")
        with database_url(backend, tmp) as url:
            started = start_stack(tmp, url, realm, backend, **options)
            try:
                yield started
            finally:
                started.close()

    return stack
