"""User tokens that expire mid-session: the client refreshes them without a failed completion.

The stack's gateway mints 3-second user tokens with no leeway, so expiry happens within the
test; nothing sleeps: each test polls the condition it waits for, with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from codesuggest.client.service import CompletionInput, SuggestionClient
from codesuggest.stack.runner import Stack
from codesuggest.tokens import ManualClock
from e2e.stack_helpers import SAMPLE_ABOVE, add_user, running_stack

pytestmark = pytest.mark.slow
LIFETIME = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "CODESUGGEST_GATEWAY_USER_TOKEN_LIFETIME": str(LIFETIME),
        "CODESUGGEST_GATEWAY_LEEWAY": "0",
        # the expiry test polls the gateway as fast as it answers, far above a typist's rate
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_RATE": "10000",
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_BURST": "10000",
    }
    with running_stack(tmp_path_factory.mktemp("e2e-expiry"), env) as stack:
        yield stack


def request() -> CompletionInput:
    return CompletionInput(
        file_name="app/files.py", content_above_cursor=SAMPLE_ABOVE, content_below_cursor="\n"
    )


def gateway_accepts(stack: Stack, details_headers: dict[str, str], token: str) -> bool:
    headers = dict(details_headers, Authorization=f"Bearer {token}")
    reply = httpx.post(
        stack.layout.edge_url + "/ai/v2/completions",
        headers=headers,
        json={
            "prompt_version": 1,
            "current_file": {
                "file_name": "a.py",
                "content_above_cursor": "x = ",
                "content_below_cursor": "",
            },
        },
    )
    assert reply.status_code in (200, 401), reply.text
    return reply.status_code == 200


async def test_expired_token_is_replaced_after_a_401_without_failing(stack: Stack) -> None:
    """A client whose clock stands still (a suspended laptop) sends a token the gateway has
    seen expire: it drops it, fetches new details once and retries; the user sees a suggestion."""
    pat = add_user(stack, "self-managed", "frozen-clock")
    client = SuggestionClient(stack.layout.url("self-managed"), pat, clock=ManualClock())
    try:
        assert (await client.complete(request())).path == "direct"
        held = client.details.details
        assert held is not None
        deadline = time.monotonic() + 5 * LIFETIME
        # The event loop is blocked here, as on a suspended machine: no background refresh.
        while gateway_accepts(stack, held.headers, held.token):
            assert time.monotonic() < deadline, "the user token never expired at the gateway"
        suggestion = await client.complete(request())
    finally:
        await client.aclose()
    assert suggestion.path == "direct" and suggestion.text
    assert client.details.details is None or client.details.details.token != held.token


async def test_tokens_roll_over_while_completions_keep_flowing(stack: Stack) -> None:
    """With the real clock the client refreshes ahead of expiry: across several token lifetimes
    every completion goes direct and none fails."""
    pat = add_user(stack, "self-managed", "rolling")
    client = SuggestionClient(stack.layout.url("self-managed"), pat)
    tokens: list[str] = []
    paths: list[str] = []
    try:
        deadline = time.monotonic() + 10 * LIFETIME
        while len(set(tokens)) < 3:
            assert time.monotonic() < deadline, f"only {len(set(tokens))} tokens seen"
            paths.append((await client.complete(request())).path)
            if client.details.details is not None:
                tokens.append(client.details.details.token)
    finally:
        await client.aclose()
    assert set(paths) == {"direct"}, paths
