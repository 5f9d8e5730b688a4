"""The whole sequence on the one-machine stack, for both realms, with real processes.

One stack per module (portal, self-managed instance, SaaS instance, gateway), started the way
`codesuggest up` starts it. Each test uses its own user so the parts' per-user state (rate
limits, cached user tokens) never couples tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from codesuggest.client.service import CompletionFailed, CompletionInput, SuggestionClient
from codesuggest.stack.runner import Stack
from e2e.stack_helpers import SAMPLE_ABOVE, add_user, remove_seat, running_stack, set_setting
from support.issuer import wait_until

pytestmark = pytest.mark.slow
REALMS = ("self-managed", "saas")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e-sequence")) as stack:
        yield stack


async def direct_access(instance: str, pat: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{instance}/api/v4/code_suggestions/direct_access", headers={"PRIVATE-TOKEN": pat}
        )


def request() -> CompletionInput:
    return CompletionInput(
        file_name="app/files.py", content_above_cursor=SAMPLE_ABOVE, content_below_cursor="\n"
    )


class Statuses:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, state: str, message: str) -> None:
        self.seen.append((state, message))

    @property
    def last(self) -> str | None:
        return self.seen[-1][0] if self.seen else None


def test_instance_token_synced_and_every_part_ready(stack: Stack) -> None:
    ready = httpx.get(stack.layout.url("self-managed") + "/monitoring/ready").json()
    assert ready["instance_token"] is True and ready["realm"] == "self-managed"
    assert httpx.get(stack.layout.url("gateway") + "/monitoring/ready").status_code == 200


@pytest.mark.parametrize("realm", REALMS)
async def test_direct_access_then_direct_completion(stack: Stack, realm: str) -> None:
    pat = add_user(stack, realm, f"walk-{realm}")
    instance = stack.layout.url(realm)
    details = await direct_access(instance, pat)
    assert details.status_code == 201, details.text
    body = details.json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    expected_issuer = "gitlab-ai-gateway" if realm == "self-managed" else instance
    assert claims["iss"] == expected_issuer and claims["gitlab_realm"] == realm
    assert body["base_url"] == stack.layout.edge_url + "/ai"

    client = SuggestionClient(instance, pat)
    try:
        suggestion = await client.complete(request())
    finally:
        await client.aclose()
    assert suggestion.path == "direct"
    assert suggestion.text, "the embedded engine completes `f.` after open(path)"


@pytest.mark.parametrize("realm", REALMS)
def test_monolith_path_serves_the_same_request(stack: Stack, realm: str) -> None:
    pat = add_user(stack, realm, f"mono-{realm}")
    reply = httpx.post(
        stack.layout.url(realm) + "/api/v4/code_suggestions/completions",
        headers={"PRIVATE-TOKEN": pat},
        json={
            "prompt_version": 1,
            "intent": "completion",
            "current_file": {
                "file_name": "app/files.py",
                "content_above_cursor": SAMPLE_ABOVE,
                "content_below_cursor": "\n",
            },
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"]


async def seat_removed_scenario(
    stack: Stack, realm: str, username: str
) -> tuple[Statuses, CompletionFailed]:
    """A warm client; the admin takes the user's seat; the client asks for new details."""
    pat = add_user(stack, realm, username)
    instance = stack.layout.url(realm)
    statuses = Statuses()
    client = SuggestionClient(instance, pat, on_status=statuses)
    try:
        assert (await client.complete(request())).path == "direct"
        remove_seat(stack, realm, username)
        refused = await direct_access(instance, pat)
        assert refused.status_code == 403, refused.text
        assert "seat" in refused.json()["message"].lower()
        client.details.invalidate(client.details.details.token)  # as at the next refresh
        with pytest.raises(CompletionFailed) as failed:
            await client.complete(request())
    finally:
        await client.aclose()
    return statuses, failed.value


@pytest.mark.parametrize("realm", REALMS)
async def test_seat_removed_refuses_direct_access(stack: Stack, realm: str) -> None:
    statuses, failed = await seat_removed_scenario(stack, realm, f"seat-{realm}")
    assert "unauthorized" in [state for state, _ in statuses.seen], statuses.seen
    assert "seat" in failed.message.lower()


async def test_seat_removed_client_ends_not_authorized(stack: Stack) -> None:
    statuses, failed = await seat_removed_scenario(stack, "self-managed", "seat-final")
    assert failed.state == "unauthorized" and statuses.last == "unauthorized", statuses.seen


async def test_direct_connections_disabled_falls_back_to_the_monolith(stack: Stack) -> None:
    pat = add_user(stack, "self-managed", "disabled-direct")
    instance = stack.layout.url("self-managed")
    set_setting(stack, "self-managed", "disabled_direct_code_suggestions", True)
    try:
        refused = await direct_access(instance, pat)
        assert refused.status_code == 403
        assert refused.json() == {"message": "403 Forbidden - Direct connections are disabled"}
        client = SuggestionClient(instance, pat)
        try:
            suggestions = [await client.complete(request()) for _ in range(3)]
        finally:
            await client.aclose()
    finally:
        set_setting(stack, "self-managed", "disabled_direct_code_suggestions", False)
    assert [s.path for s in suggestions] == ["monolith"] * 3
    assert all(s.text for s in suggestions)


async def test_gateway_restarted_mid_session_client_recovers(stack: Stack) -> None:
    pat = add_user(stack, "self-managed", "restart")
    client = SuggestionClient(stack.layout.url("self-managed"), pat)
    try:
        assert (await client.complete(request())).path == "direct"
        stack.restart("gateway")
        after = await client.complete(request())
        assert after.text
        paths = [after.path]

        async def direct_again() -> bool:
            paths.append((await client.complete(request())).path)
            return paths[-1] == "direct"

        for _ in range(100):  # the breaker re-probes after 1 s; a few seconds at most
            if paths[-1] == "direct" or await direct_again():
                break
        assert paths[-1] == "direct", paths
    finally:
        await client.aclose()


def test_every_part_still_running(stack: Stack) -> None:
    assert stack.supervisor is not None and not stack.supervisor.dead_parts()
    wait_until(
        lambda: httpx.get(stack.layout.url("gateway") + "/monitoring/ready").status_code == 200,
        timeout=30,
        what="gateway ready",
    )


def run_demo(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "codesuggest"),
            "demo",
            "--rounds",
            "2",
            "--data-dir",
            str(stack.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )


def test_demo_plays_every_step_against_the_running_stack(stack: Stack) -> None:
    result = run_demo(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "using the running system" in result.stdout
    for arrows in (
        "[1-4]",
        "[5-18]",
        "[8, 13-15]",
        "[9-12]",
        "[5-7, 16-18]",
        "[32-35]",
        "[30, 36-38]",
    ):
        assert f"✓ {arrows}" in result.stdout, arrows
    assert "direct p50" in result.stdout and "monolith p50" in result.stdout
    assert stack.supervisor is not None and not stack.supervisor.dead_parts()


def test_demo_exits_non_zero_naming_the_failed_step(stack: Stack) -> None:
    set_setting(stack, "self-managed", "disabled_direct_code_suggestions", True)
    try:
        result = run_demo(stack)
    finally:
        set_setting(stack, "self-managed", "disabled_direct_code_suggestions", False)
    assert result.returncode == 1
    assert "✗ [5-18]" in result.stdout
    assert "Direct connections are disabled" in result.stdout + result.stderr
