"""The instance's usage sink, fed by the gateway's real outbox and HTTP sink, authenticated by
tokens the real gateway's key signs and verified with the keys the gateway publishes; on the
instance's migrated SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request

from codesuggest.common.db import make_engine, upgrade
from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.app import create_app as create_gateway
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.gateway.usage.outbox import Outbox
from codesuggest.gateway.usage.recorder import SignedToken
from codesuggest.gateway.usage.sinks import HttpSink
from codesuggest.instance import errors
from codesuggest.instance.app import create_app as create_instance
from codesuggest.instance.routes import usage
from codesuggest.instance.routes.deps import current_admin
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import MIGRATIONS_DIR
from codesuggest.instance.usage_sink import UsageSink
from codesuggest.tokens import PrivateKey, RemoteKeySet, Signer, SystemClock
from support.databases import postgres_database
from support.servers import ServerThread

SERVICE = "gitlab-ai-gateway"
INSTANCE = "11111111-0000-4000-8000-000000000001"  # the sink's own instance
OTHER = "22222222-0000-4000-8000-000000000002"  # another the gateway serves


def admin_header(request: Request) -> None:
    """Stands in for the instance's PAT check: `admin-pat` is an administrator's."""
    if request.headers.get("private-token") != "admin-pat":
        raise errors.forbidden("You must be an administrator")


def instance_app(engine, audience: str, gateway_url: str) -> FastAPI:
    """The usage routes alone, over a real sink; the instance's own dependencies (its context
    and PAT check) are replaced, as FastAPI allows."""
    sinks: list[UsageSink] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        http = httpx.AsyncClient()
        sink = UsageSink(
            engine,
            audience=audience,
            gateway_keys=RemoteKeySet(gateway_url, http),
            gateway_issuer=SERVICE,
            http=http,
        )
        sinks.append(sink)
        await sink.start()
        yield
        await sink.aclose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(usage.router)
    app.dependency_overrides[usage.running_sink] = lambda: sinks[0]
    app.dependency_overrides[current_admin] = admin_header
    app.dependency_overrides[usage.own_instance_id] = lambda: INSTANCE

    @app.exception_handler(errors.InstanceError)
    async def refused(_request, exc: errors.InstanceError):
        from fastapi.responses import JSONResponse

        return JSONResponse(exc.body, status_code=exc.status)

    return app


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("gateway")
    settings = GatewaySettings(data_dir=data_dir, public_url="http://127.0.0.1:0")
    server = ServerThread(create_gateway(settings))
    server.start()
    # The published jwks_uri must point at the real port.
    settings.public_url = server.url
    key = PrivateKey.from_file(data_dir / "signing-key.pem")
    yield server, Signer(key, SERVICE)
    server.stop()


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_database("usage_sink") as url:
        yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def instance(request, tmp_path_factory, gateway):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('instance') / 'instance.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine, MIGRATIONS_DIR)  # the instance's real migrations, ours included
    server = ServerThread(instance_app(engine, "http://instance.test", gateway[0].url)).start()
    yield server
    server.stop()
    engine.dispose()


def event(user: str, name: str = "code_suggestion_requested", **fields) -> UsageEvent:
    return UsageEvent(name=name, global_user_id=user, **({"instance_id": INSTANCE} | fields))


async def post(instance, token: str | None, events: list[UsageEvent]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"events": [e.model_dump(mode="json") for e in events]}
    async with httpx.AsyncClient() as http:
        return await http.post(f"{instance.url}/api/v4/usage/events", json=body, headers=headers)


async def report(instance, **params) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(
            f"{instance.url}/api/v4/usage/report",
            params=params,
            headers={"PRIVATE-TOKEN": "admin-pat"},
        )


async def test_gateway_outbox_ships_to_the_instance_once_per_event(tmp_path, gateway, instance):
    signer = gateway[1]
    user = f"u-{uuid.uuid4().hex[:6]}"
    token = SignedToken(signer, "http://instance.test", SystemClock())
    outbox = Outbox(
        tmp_path / "outbox.db",
        HttpSink(f"{instance.url}/api/v4/usage/events", token),
        flush_interval=0.02,
        batch_size=20,
    )
    await outbox.start()
    events = [event(user, status="served", path="direct", language="python") for _ in range(45)]
    events.append(event(user, "code_suggestion_accepted", count=7))
    try:
        await asyncio.gather(*(outbox.record(e) for e in events))
        deadline = time.monotonic() + 15
        while await outbox.pending():
            assert time.monotonic() < deadline, "outbox did not drain"
            await asyncio.sleep(0.02)
    finally:
        await outbox.aclose()
    # The same batch delivered again (a crash after the sink's ack) is stored once.
    again = await post(instance, token(), events[:10])
    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicates": 10}

    response = await report(instance, by="user")
    assert response.status_code == 200
    rows = {row["key"]: row for row in response.json()["rows"]}
    assert rows[user]["requested"] == 45
    assert rows[user]["served"] == 45
    assert rows[user]["direct"] == 45
    assert rows[user]["accepted"] == 7


async def test_tokens_not_signed_for_usage_are_refused(gateway, instance):
    signer = gateway[1]
    other = Signer(PrivateKey.generate(), SERVICE)
    wrong_aud, _ = signer.mint(
        subject=SERVICE,
        audience="http://elsewhere.test",
        lifetime=300,
        extra={"purpose": "usage_events"},
    )
    user_token, _ = signer.mint(subject="someone", audience=SERVICE, lifetime=300)
    no_purpose, _ = signer.mint(subject=SERVICE, audience="http://instance.test", lifetime=300)
    forged = SignedToken(other, "http://instance.test", SystemClock())()
    for token in (None, wrong_aud, user_token, no_purpose, forged, "not-a-jwt"):
        response = await post(instance, token, [event("x")])
        assert response.status_code == 401, token
        assert response.json() == {"message": "401 Unauthorized"}


async def test_invalid_batches_are_refused_with_the_field(gateway, instance):
    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{instance.url}/api/v4/usage/events",
            json={"events": [{"event_id": "e1", "name": "made_up", "timestamp": "2026-01-01"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 400
    assert "events.0.name" in response.json()["error"]


async def test_over_long_fields_are_clipped_not_refused(gateway, instance):
    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    user = f"long-{uuid.uuid4().hex[:6]}"
    e = event(user, client_name="Mozilla/5.0 " * 100, language="x" * 500)
    response = await post(instance, token, [e])
    assert response.json() == {"stored": 1, "duplicates": 0}
    rows = {r["key"]: r for r in (await report(instance, by="language")).json()["rows"]}
    assert rows["x" * 64]["requested"] >= 1


async def test_report_by_day_since_and_admin_only(gateway, instance):
    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    lang = f"lang-{uuid.uuid4().hex[:6]}"
    old = datetime.now(UTC) - timedelta(days=40)
    events = [
        event("a", language=lang, status="empty", path="monolith"),
        event("b", language=lang, status="error:Timeout", path="direct"),
        event("c", language=lang, timestamp=old, status="served"),
    ]
    assert (await post(instance, token, events)).json() == {"stored": 3, "duplicates": 0}
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    rows = {
        r["key"]: r for r in (await report(instance, by="language", since=since)).json()["rows"]
    }
    assert (rows[lang]["requested"], rows[lang]["empty"], rows[lang]["errors"]) == (2, 1, 1)
    assert (rows[lang]["monolith"], rows[lang]["direct"]) == (1, 1)
    days = [r["key"] for r in (await report(instance, by="day")).json()["rows"]]
    assert old.date().isoformat() in days
    async with httpx.AsyncClient() as http:
        refused = await http.get(
            f"{instance.url}/api/v4/usage/report", headers={"PRIVATE-TOKEN": "user-pat"}
        )
    assert refused.status_code == 403


async def test_cli_report_reads_the_instance(gateway, instance):
    from typer.testing import CliRunner

    from codesuggest.cli import app

    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    user = f"cli-{uuid.uuid4().hex[:6]}"
    await post(instance, token, [event(user, status="served"), event(user, "user_token_issued")])
    args = ["usage", "report", "--instance", instance.url, "--token", "admin-pat", "--json"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.output)["rows"]}
    assert (rows[user]["requested"], rows[user]["tokens_issued"]) == (1, 1)
    denied = await asyncio.to_thread(
        CliRunner().invoke, app, ["usage", "report", "--instance", instance.url, "--token", "x"]
    )
    assert denied.exit_code == 1
    assert "403" in denied.output


async def test_the_report_is_of_this_instance_unless_another_is_asked_for(gateway, instance):
    """The gateway ships every instance's events to its collector."""
    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    ours, theirs = f"ours-{uuid.uuid4().hex[:6]}", f"theirs-{uuid.uuid4().hex[:6]}"
    assert (await post(instance, token, [event(ours), event(theirs, instance_id=OTHER)])).json()[
        "stored"
    ] == 2

    async def users(**params: str) -> set[str]:
        response = await report(instance, by="user", **params)
        assert response.status_code == 200, response.text
        return {row["key"] for row in response.json()["rows"]}

    mine = await users()
    assert ours in mine and theirs not in mine
    assert (await report(instance)).json()["instance_id"] == INSTANCE
    other = await users(instance_id=OTHER)
    assert theirs in other and ours not in other
    assert {ours, theirs} <= await users(instance_id="all")


async def test_cli_report_of_an_instance_takes_only_its_gateway_events(gateway, instance, tmp_path):
    """From a collector (here the same instance) or a JSONL sink, with the instance's own."""
    from typer.testing import CliRunner

    from codesuggest.cli import app

    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    ours, theirs = f"ours-{uuid.uuid4().hex[:6]}", f"theirs-{uuid.uuid4().hex[:6]}"
    events = [event(ours), event(theirs, instance_id=OTHER)]
    await post(instance, token, events)
    sink = tmp_path / "usage.jsonl"
    sink.write_text("".join(e.model_dump_json() + "\n" for e in events))
    base = ["usage", "report", "--instance", instance.url, "--token", "admin-pat", "--json"]
    for extra in (
        ["--collector", instance.url, "--collector-token", "admin-pat"],
        ["--source", str(sink)],
    ):
        result = await asyncio.to_thread(CliRunner().invoke, app, base + extra)
        assert result.exit_code == 0, result.output
        document = json.loads(result.output)
        keys = {row["key"] for row in document["rows"]}
        assert ours in keys and theirs not in keys, extra
        assert document["instance_id"] == INSTANCE


async def test_an_instance_without_a_sink_answers_404(tmp_path):
    settings = InstanceSettings(
        database_url=f"sqlite:///{tmp_path / 'instance.db'}",
        data_dir=tmp_path,
        realm="saas",
        secret="s" * 32,
        usage_sink_enabled=False,
    )
    app = create_instance(settings)
    with ServerThread(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            posted = await http.post("/api/v4/usage/events", json={"events": []})
            reported = await http.get("/api/v4/usage/report")
    app.state.ctx.store.dispose()
    assert (posted.status_code, reported.status_code) == (404, 404)
    assert posted.json() == {"message": "404 Not Found"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("count", "9223372036854775808"),
        ("suggestion_chars", "-1180591620717411303424"),
        ("timestamp", '"0001-01-01T00:00:00+14:00"'),
        ("latency_ms", "NaN"),
        ("latency_ms", "-1"),
    ],
)
async def test_out_of_range_values_are_a_400_and_nothing_is_stored(
    gateway, instance, field: str, value: str
):
    token = SignedToken(gateway[1], "http://instance.test", SystemClock())()
    user = f"range-{uuid.uuid4().hex[:6]}"
    fields = {"event_id": uuid.uuid4().hex, "name": "code_suggestion_requested"}
    fields |= {"timestamp": "2026-01-01T00:00:00+00:00", "global_user_id": user}
    raw = json.dumps({"events": [fields | {field: "__VALUE__"}]}).replace('"__VALUE__"', value)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{instance.url}/api/v4/usage/events",
            content=raw,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert field in error or "NaN" in error
    rows = (await report(instance, by="user")).json()["rows"]
    assert user not in {r["key"] for r in rows}
