"""GitLab's own editor client, unmodified, against the one-machine stack in both realms.

The real GitLab Language Server (the Node bundle GitLab's editor extensions ship) is driven by
a real LSP client. Between it and the stack sit recording reverse proxies (one per instance,
one for the edge, which the instances hand out as `base_url`), so the tests assert on what the
language server sent and what it was answered. One stack for the module; each test has its own
user and its own client name (in the server's `User-Agent`), so exchanges never mix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from codesuggest.instance import admin
from codesuggest.instance.models import usage_events
from codesuggest.stack.layout import Layout, free_port_base
from codesuggest.stack.runner import Stack
from e2e import gitlab_ls
from e2e.recording_proxy import Collector, Exchange, RecordingProxy
from e2e.stack_helpers import (
    SAMPLE_ABOVE,
    add_user,
    instance_session,
    remove_seat,
    running_stack,
    set_setting,
)

pytestmark = pytest.mark.slow
REALMS = ("self-managed", "saas")
COLLECTOR = "self-managed"
"""The instance `codesuggest up` has the gateway ship its usage events to."""
TEXT = SAMPLE_ABOVE + "\n"
CURSOR = (TEXT.count("\n", 0, len(SAMPLE_ABOVE)), len(SAMPLE_ABOVE.rsplit("\n", 1)[-1]))
OPEN_TAB = "def frobnicate_widgets(a, b):\n    return a\n"
"""An open tab defining a name only it knows: the embedded engine completes it from there."""
DISABLED = {"message": "403 Forbidden - Direct connections are disabled"}


@dataclass
class World:
    stack: Stack
    bundle: Path
    edge: RecordingProxy
    instances: dict[str, RecordingProxy]
    snowplow: Collector
    tmp: Path

    def workspace(self, name: str) -> Path:
        path = self.tmp / "workspaces" / name
        path.mkdir(parents=True)
        return path

    def ua_exchanges(self, proxy: RecordingProxy, client: str) -> list[Exchange]:
        """What the language server of `client` sent through `proxy`."""
        return [e for e in proxy.exchanges if f"({client}:" in e.headers.get("user-agent", "")]

    def gateway_events(self, client_name: str) -> list[dict]:
        """The gateway's usage events for `client_name`, as shipped to the instance `up`
        makes its usage collector (the self-managed one)."""
        with instance_session(self.stack, COLLECTOR) as session:
            query = select(usage_events).where(
                usage_events.c.client_name == client_name, usage_events.c.source.is_(None)
            )
            return [dict(row) for row in session.execute(query).mappings()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    bundle = gitlab_ls.install()
    tmp = tmp_path_factory.mktemp("e2e-gitlab-ls")
    # The proxies take their ports first, so the stack's port base avoids them.
    edge = RecordingProxy("").start()
    instances = {realm: RecordingProxy("").start() for realm in REALMS}
    snowplow = Collector().start()
    port_base = free_port_base()
    layout = Layout(tmp / "stack", port_base)
    edge.upstream = layout.edge_url
    for realm, proxy in instances.items():
        proxy.upstream = layout.url(realm)
    overrides = {realm: {"CODESUGGEST_INSTANCE_EDGE_URL": edge.url} for realm in REALMS}
    try:
        with running_stack(tmp, overrides=overrides, port_base=port_base) as stack:
            yield World(stack, bundle, edge, instances, snowplow, tmp)
    finally:
        snowplow.stop()
        edge.stop()
        for proxy in instances.values():
            proxy.stop()


def new_user(world: World, realm: str, label: str) -> tuple[str, str]:
    """(username, api PAT) of a fresh user with a seat."""
    username = f"{label}-{realm}".replace("self-managed", "sm")
    return username, add_user(world.stack, realm, username)


def assert_answered_like_gitlab(exchanges: list[Exchange], allowed: set[tuple[str, int]]) -> None:
    """Every call is 2xx, except the answers GitLab itself gives (`allowed`)."""
    odd = [
        (e.method, e.path, e.status)
        for e in exchanges
        if not 200 <= e.status < 300 and (e.path, e.status) not in allowed
    ]
    assert odd == [], odd


def poll(condition, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)
    return result


def usage_report(world: World, realm: str) -> list[dict]:
    """`codesuggest usage report --by client --json`: the gateway's events (at the collector)
    joined with the IDE telemetry the realm's instance stored."""
    pats = {r: world.stack.state["instances"][r]["admin_pat"] for r in REALMS}
    command = [str(Path(sys.executable).parent / "codesuggest"), "usage", "report"]
    command += ["--by", "client", "--json", "--instance", world.stack.layout.url(realm)]
    command += ["--token", pats[realm]]
    if realm != COLLECTOR:
        command += ["--collector", world.stack.layout.url(COLLECTOR)]
        command += ["--collector-token", pats[COLLECTOR]]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)["rows"]


async def ready(session: gitlab_ls.Session, proxy: RecordingProxy) -> None:
    """Signed in and done asking the instance what the user may use."""
    await session.wait_for(lambda: session.feature_checks("authentication") == [])
    await session.wait_for(lambda: proxy.graphql("getDuoAvailableFeatures") or None)


@pytest.mark.parametrize("realm", REALMS)
async def test_signs_in_completes_on_the_direct_path_and_its_telemetry_is_counted(
    world: World, realm: str
) -> None:
    _, pat = new_user(world, realm, "direct")
    client = f"e2e-direct-{realm}"
    instance = world.instances[realm]
    async with gitlab_ls.language_server(
        world.bundle, instance.url, pat, client, world.workspace(client), world.snowplow.url
    ) as ls:
        await ready(ls, instance)
        ls.open("app/util.py", OPEN_TAB)
        uri = ls.open("app/files.py", TEXT)
        inline = await ls.inline(uri, *CURSOR)
        items = await ls.completion(uri, *CURSOR)

        # Signed in with the PAT: both token checks asked, the PAT one answered with `api`.
        (pat_self,) = [e for e in world.ua_exchanges(instance, client) if e.path.endswith("/self")]
        assert pat_self.status == 200 and "api" in pat_self.response["scopes"]
        (oauth,) = [
            e for e in world.ua_exchanges(instance, client) if e.path == "/oauth/token/info"
        ]
        assert oauth.status == 401
        version = instance.calls("/api/v4/version")[-1]
        assert version.response["version"] == "18.3.0"
        available = instance.graphql("suggestionsAvailable")[-1].response
        assert available == {"data": {"currentUser": {"duoCodeSuggestionsAvailable": True}}}
        features = instance.graphql("getDuoAvailableFeatures")[-1].response["data"]
        assert features["currentUser"]["codeSuggestionsContexts"] == ["open_tabs", "imports"]

        # For its own telemetry it asks who and where it is (GitLab 18.3's connection details).
        (details, *_) = await ls.wait_for(
            lambda: [
                e
                for e in world.ua_exchanges(instance, client)
                if e.path == "/api/v4/code_suggestions/connection_details"
            ]
        )
        assert details.status == 201
        assert details.response["realm"] == realm
        assert details.response["instance_version"] == "18.3.0"

        # Completions went straight to the edge with the user token, none through the instance.
        direct = [
            e for e in world.ua_exchanges(world.edge, client) if e.path == "/ai/v2/completions"
        ]
        assert direct and all(e.status == 200 for e in direct)
        assert not instance.calls("/api/v4/code_suggestions/completions")
        sent = direct[0]
        assert sent.headers["x-gitlab-language-server-version"] == gitlab_ls.LANGUAGE_SERVER_VERSION
        assert sent.headers["x-gitlab-realm"] == realm
        assert sent.body["current_file"]["content_above_cursor"] == SAMPLE_ABOVE
        tabs = [c for c in sent.body.get("context", []) if c["content"] == OPEN_TAB]
        assert tabs and tabs[0]["name"].endswith("app/util.py"), sent.body.get("context")
        suggested = {c["text"] for e in direct for c in e.response["choices"]}
        assert inline.items and inline.items[0].insert_text in suggested
        assert items and items[0].insert_text in suggested

        # The gateway uses the open tab: a name defined only there is completed from it.
        other = ls.open("app/main.py", "import os\n\nx = frobnicate_")
        from_tab = await ls.inline(other, 2, len("x = frobnicate_"))
        assert [i.insert_text for i in from_tab.items] == ["widgets"]
        direct = [
            e for e in world.ua_exchanges(world.edge, client) if e.path == "/ai/v2/completions"
        ]

        # The gateway counted each of them on the direct path, with the server's User-Agent.
        user_agent = sent.headers["user-agent"]
        requested = poll(
            lambda: (
                [
                    e
                    for e in world.gateway_events(user_agent)
                    if e["name"] == "code_suggestion_requested"
                ]
                if len(world.gateway_events(user_agent)) >= len(direct)
                else None
            )
        )
        assert len(requested) == len(direct)
        assert {(e["path"], e["status"]) for e in requested} == {("direct", "served")}
        assert {e["client_version"] for e in requested} == {gitlab_ls.LANGUAGE_SERVER_VERSION}

        # What the editor reports after showing and accepting reaches the instance once each.
        tracking_id = inline.items[0].command.arguments[0]
        ls.telemetry("suggestion_shown", tracking_id)
        ls.telemetry("suggestion_accepted", tracking_id)
        tracked = await ls.wait_for(
            lambda: (
                calls
                if len(calls := instance.calls("/api/v4/usage_data/track_event")) >= 2
                and {
                    c.body["event"]
                    for c in calls
                    if c.body["additional_properties"]["unique_tracking_id"] == tracking_id
                }
                == {"code_suggestion_shown_in_ide", "code_suggestion_accepted_in_ide"}
                else None
            )
        )
        mine = [
            c
            for c in tracked
            if c.body["additional_properties"]["unique_tracking_id"] == tracking_id
        ]
        assert [c.status for c in mine] == [200, 200]
        assert all(c.body["additional_properties"]["language"] == "python" for c in mine)

        assert ls.seen("$/gitlab/api/error") == []  # it reported no failed API call
    rows = {row["key"]: row for row in usage_report(world, realm)}
    row = rows[user_agent]
    assert row["requested"] == len(direct)
    assert row["direct"] == len(direct)
    assert (row["shown"], row["accepted"], row["rejected"]) == (1, 1, 0)
    assert row["acceptance_rate"] == 1.0
    assert_answered_like_gitlab(
        world.ua_exchanges(instance, client) + world.ua_exchanges(world.edge, client),
        {("/oauth/token/info", 401)},
    )


@pytest.mark.parametrize("realm", REALMS)
async def test_with_direct_connections_disabled_it_completes_through_the_instance(
    world: World, realm: str
) -> None:
    _, pat = new_user(world, realm, "monolith")
    client = f"e2e-monolith-{realm}"
    instance = world.instances[realm]
    set_setting(world.stack, realm, "disabled_direct_code_suggestions", True)
    try:
        async with gitlab_ls.language_server(
            world.bundle, instance.url, pat, client, world.workspace(client)
        ) as ls:
            await ready(ls, instance)
            uri = ls.open("app/files.py", TEXT)
            inline = await ls.inline(uri, *CURSOR)
    finally:
        set_setting(world.stack, realm, "disabled_direct_code_suggestions", False)
    mine = world.ua_exchanges(instance, client)
    refused = [e for e in mine if e.path == "/api/v4/code_suggestions/direct_access"]
    assert refused and all(e.status == 403 and e.response == DISABLED for e in refused)
    monolith = [e for e in mine if e.path == "/api/v4/code_suggestions/completions"]
    assert monolith and all(e.status == 200 for e in monolith)
    assert not [e for e in world.ua_exchanges(world.edge, client) if e.path.startswith("/ai/")]
    suggested = {c["text"] for e in monolith for c in e.response["choices"]}
    assert inline.items and inline.items[0].insert_text in suggested
    user_agent = monolith[0].headers["user-agent"]
    requested = poll(lambda: world.gateway_events(user_agent))
    assert {e["path"] for e in requested} == {"monolith"}
    assert_answered_like_gitlab(
        mine, {("/oauth/token/info", 401), ("/api/v4/code_suggestions/direct_access", 403)}
    )


@pytest.mark.parametrize("realm", REALMS)
async def test_a_user_without_a_seat_is_told_and_gets_no_suggestion(
    world: World, realm: str
) -> None:
    username, pat = new_user(world, realm, "noseat")
    remove_seat(world.stack, realm, username)
    client = f"e2e-noseat-{realm}"
    instance = world.instances[realm]
    async with gitlab_ls.language_server(
        world.bundle, instance.url, pat, client, world.workspace(client)
    ) as ls:
        await ls.wait_for(lambda: ls.feature_checks("authentication") == [])
        await ls.wait_for(
            lambda: "code-suggestions-no-license" in (ls.feature_checks("code_suggestions") or [])
        )
        uri = ls.open("app/files.py", TEXT)
        inline = await ls.inline(uri, *CURSOR)
    available = [
        e
        for e in world.ua_exchanges(instance, client)
        if isinstance(e.body, dict) and e.body.get("operationName") == "suggestionsAvailable"
    ]
    assert available[-1].response == {
        "data": {"currentUser": {"duoCodeSuggestionsAvailable": False}}
    }
    assert list(inline.items) == []
    # Whatever it still asks for is refused as GitLab refuses a user without a seat.
    mine = world.ua_exchanges(instance, client)
    for exchange in mine:
        if exchange.path.startswith("/api/v4/code_suggestions/"):
            assert exchange.status == 403, exchange
            assert "no code suggestions seat" in exchange.response["message"]
    assert not world.ua_exchanges(world.edge, client)
    assert_answered_like_gitlab(
        mine,
        {
            ("/oauth/token/info", 401),
            ("/api/v4/code_suggestions/direct_access", 403),
            ("/api/v4/code_suggestions/completions", 403),
        },
    )


@pytest.mark.parametrize("realm", REALMS)
async def test_a_read_api_token_is_refused_as_needing_api(world: World, realm: str) -> None:
    username, _ = new_user(world, realm, "readapi")
    with instance_session(world.stack, realm) as session:
        pat = admin.create_token(session, username, datetime.now(UTC), ["read_api"], 1).token
    client = f"e2e-readapi-{realm}"
    instance = world.instances[realm]
    async with gitlab_ls.language_server(
        world.bundle, instance.url, pat, client, world.workspace(client)
    ) as ls:
        checks = await ls.wait_for(
            lambda: [p for p in ls.seen("$/gitlab/token/check") if "needs api" in p.message]
        )
        assert "invalid_scopes" in checks[0].message
        assert "authentication-required" in (ls.feature_checks("authentication") or [])
    mine = world.ua_exchanges(instance, client)
    (pat_self,) = [e for e in mine if e.path == "/api/v4/personal_access_tokens/self"]
    assert pat_self.status == 200 and pat_self.response["scopes"] == ["read_api"]
    assert {e.path for e in mine} <= {
        "/api/v4/personal_access_tokens/self",
        "/oauth/token/info",
    }
    assert_answered_like_gitlab(mine, {("/oauth/token/info", 401)})
