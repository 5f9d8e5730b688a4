"""The client against real loopback servers speaking the contract, with faults injected
at the servers and time moved on injected clocks (server clock and client clock apart)."""

from __future__ import annotations

import asyncio
import time

import pytest

from client.contract_fakes import GOOD_PAT
from codesuggest.client.details import REFUSED_BACKOFF
from codesuggest.client.service import CompletionFailed, CompletionInput, SuggestionClient
from codesuggest.tokens.clock import ManualClock
from support.polling import eventually

REQUEST = CompletionInput(
    file_name="app/main.py",
    content_above_cursor="def add(a, b):\n    return ",
    content_below_cursor="\n",
    language_identifier="python",
)
GENERATION_REQUEST = CompletionInput(
    file_name="app/main.py",
    content_above_cursor="# write a function that parses a csv line\n",
    content_below_cursor="",
    language_identifier="python",
)


def make_client(stack, skew: float = 0.0, token: str = GOOD_PAT, **kwargs):
    clock = ManualClock(stack.world.clock.now() + skew)
    statuses: list[tuple[str, str]] = []
    client = SuggestionClient(
        stack.instance.url,
        token,
        clock=clock,
        timeout=2.0,
        on_status=lambda state, message: statuses.append((state, message)),
        **kwargs,
    )
    return client, clock, statuses


def advance(stack, clock: ManualClock, seconds: float) -> None:
    stack.world.clock.advance(seconds)
    clock.advance(seconds)


async def test_first_completion_fetches_details_then_goes_direct_with_contract_headers(stack):
    client, _clock, statuses = make_client(stack)
    try:
        first = await client.complete(REQUEST)
        second = await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert (first.path, first.text, second.path) == ("direct", "return a + b", "direct")
    assert first.timings["details_fetched"] and not second.timings["details_fetched"]
    assert second.timings["server_timing_ms"] == {"model": 1.5, "total": 2.25}
    assert len(stack.world.direct_access_calls) == 1
    assert stack.world.monolith_requests == []
    sent = stack.world.gateway_requests[0]["headers"]
    token = next(iter(stack.world.tokens))
    assert sent["authorization"] == f"Bearer {token}"
    assert sent["x-gitlab-authentication-type"] == "oidc"
    assert sent["x-gitlab-global-user-id"] == f"user-{GOOD_PAT}"
    assert sent["x-gitlab-realm"] == "self-managed"
    assert sent["x-gitlab-language-server-version"] == client.version
    assert sent["user-agent"].startswith("codesuggest-client/")
    assert statuses == [("direct", "completions go straight to the gateway")]


async def test_warm_client_never_waits_for_a_token_fetch_across_expiry(stack):
    world = stack.world
    world.direct_access_delay = 1.0  # the instance is slow to hand out tokens
    client, clock, _ = make_client(stack)
    try:
        await client.complete(REQUEST)  # cold: waits for the one fetch
        first_token = next(iter(world.tokens))
        advance(stack, clock, 0.8 * world.token_lifetime + 1)  # refresh is due
        durations = []
        while len(world.tokens) < 2 or len(durations) < 5:
            t0 = time.perf_counter()
            suggestion = await client.complete(REQUEST)
            durations.append(time.perf_counter() - t0)
            assert suggestion.path == "direct"
            assert len(durations) < 500, "the background refresh never finished"
            await asyncio.sleep(0.02)
        advance(stack, clock, 0.2 * world.token_lifetime)  # the first token has expired
        t0 = time.perf_counter()
        after = await client.complete(REQUEST)
        durations.append(time.perf_counter() - t0)
    finally:
        await client.aclose()
    assert after.path == "direct"
    assert max(durations) < 0.5, durations  # far below the 1 s a token fetch takes
    assert len(world.direct_access_calls) == 2
    # the completion after the first token's expiry carried the refreshed token
    assert world.gateway_requests[-1]["headers"]["authorization"] != f"Bearer {first_token}"


async def test_concurrent_cold_completions_share_one_fetch(stack):
    stack.world.direct_access_delay = 0.2
    client, _clock, _ = make_client(stack)
    try:
        results = await asyncio.gather(*(client.complete(REQUEST) for _ in range(8)))
    finally:
        await client.aclose()
    assert {r.path for r in results} == {"direct"}
    assert len(stack.world.direct_access_calls) == 1


async def test_gateway_down_falls_back_to_monolith_then_direct_after_breaker(stack):
    client, clock, statuses = make_client(stack)
    try:
        assert (await client.complete(REQUEST)).path == "direct"
        stack.gateway.stop()
        try:
            down = await client.complete(REQUEST)
            assert (down.path, down.text) == ("monolith", "return a + b")
            assert client.breaker.state == "open"
            assert (await client.complete(REQUEST)).path == "monolith"  # breaker open
        finally:
            stack.gateway.start()  # same port, same URL
        assert (await client.complete(REQUEST)).path == "monolith"  # still open: 1 s
        clock.advance(1.01)
        back = await client.complete(REQUEST)
        assert back.path == "direct"
        assert client.breaker.state == "closed"
    finally:
        await client.aclose()
    assert len(stack.world.monolith_requests) == 3
    assert all(r["body"]["intent"] == "completion" for r in stack.world.monolith_requests)
    assert [s for s, _ in statuses] == ["direct", "monolith", "direct"]


async def test_gateway_5xx_opens_breaker_growing_five_fold(stack):
    client, clock, _ = make_client(stack)
    try:
        stack.world.gateway_statuses = [503, 503]  # the answer and its one retry
        assert (await client.complete(REQUEST)).path == "monolith"
        clock.advance(1.01)
        stack.world.gateway_statuses = [503, 503]  # the half-open probe fails too
        assert (await client.complete(REQUEST)).path == "monolith"
        clock.advance(4.9)
        assert (await client.complete(REQUEST)).path == "monolith"
        clock.advance(0.2)
        assert (await client.complete(REQUEST)).path == "direct"
    finally:
        await client.aclose()
    assert len(stack.world.gateway_requests) == 5  # nothing sent direct while open


async def test_gateway_401_once_refreshes_details_once_and_retries_once(stack):
    client, _clock, _ = make_client(stack)
    try:
        await client.complete(REQUEST)
        assert len(stack.world.direct_access_calls) == 1
        gateway_before = len(stack.world.gateway_requests)
        stack.world.gateway_statuses = [401]
        suggestion = await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert (suggestion.path, suggestion.text) == ("direct", "return a + b")
    assert len(stack.world.direct_access_calls) == 2
    assert len(stack.world.gateway_requests) - gateway_before == 2
    tokens = [r["headers"]["authorization"] for r in stack.world.gateway_requests[-2:]]
    assert tokens[0] != tokens[1]
    assert stack.world.monolith_requests == []


async def test_direct_connections_disabled_uses_monolith_and_backs_off(stack):
    stack.world.disabled = True
    client, clock, statuses = make_client(stack)
    try:
        for _ in range(3):
            assert (await client.complete(REQUEST)).path == "monolith"
        assert len(stack.world.direct_access_calls) == 1
        assert statuses[0] == ("monolith", "Direct connections are disabled")
        advance(stack, clock, REFUSED_BACKOFF - 1)
        assert (await client.complete(REQUEST)).path == "monolith"
        assert len(stack.world.direct_access_calls) == 1  # not before the back-off
        advance(stack, clock, 2)
        assert (await client.complete(REQUEST)).path == "monolith"
        assert len(stack.world.direct_access_calls) == 2  # asked again, still disabled
        stack.world.disabled = False
        advance(stack, clock, 2 * REFUSED_BACKOFF - 1)  # the back-off has doubled
        assert (await client.complete(REQUEST)).path == "monolith"
        assert len(stack.world.direct_access_calls) == 2
        advance(stack, clock, 2)
        assert (await client.complete(REQUEST)).path == "direct"
    finally:
        await client.aclose()
    assert len(stack.world.direct_access_calls) == 3


async def test_direct_access_401_is_unauthorized_and_backs_off(stack):
    client, clock, statuses = make_client(stack, token="glpat-revoked")
    try:
        with pytest.raises(CompletionFailed) as failed:
            await client.complete(REQUEST)  # the monolith refuses the PAT as well
        assert failed.value.state == "unauthorized"
        with pytest.raises(CompletionFailed):
            await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert len(stack.world.direct_access_calls) == 1
    assert statuses[0][0] == "unauthorized"


async def test_direct_access_429_honors_retry_after(stack):
    stack.world.rate_limited_for = 120
    client, clock, _ = make_client(stack)
    try:
        assert (await client.complete(REQUEST)).path == "monolith"
        stack.world.rate_limited_for = None
        advance(stack, clock, 119)
        assert (await client.complete(REQUEST)).path == "monolith"
        assert len(stack.world.direct_access_calls) == 1
        advance(stack, clock, 2)
        assert (await client.complete(REQUEST)).path == "direct"
    finally:
        await client.aclose()
    assert len(stack.world.direct_access_calls) == 2


@pytest.mark.parametrize("skew", [-600.0, 600.0], ids=["client-10min-slow", "client-10min-fast"])
async def test_skewed_client_clock_refreshes_on_the_servers_schedule(stack, skew):
    world = stack.world
    client, clock, _ = make_client(stack, skew=skew)
    try:
        await client.complete(REQUEST)
        advance(stack, clock, 0.8 * world.token_lifetime - 30)
        await client.complete(REQUEST)
        await asyncio.sleep(0.05)
        assert len(world.direct_access_calls) == 1  # not due yet on the server's clock
        advance(stack, clock, 31)
        await client.complete(REQUEST)
        await eventually(lambda: len(world.tokens) == 2)
        advance(stack, clock, 0.2 * world.token_lifetime)  # first token now expired
        assert (await client.complete(REQUEST)).path == "direct"
    finally:
        await client.aclose()
    assert len(world.direct_access_calls) == 2
    assert world.monolith_requests == []


async def test_fast_clock_with_short_tokens_does_not_refetch_every_time(stack):
    stack.world.token_lifetime = 300  # shorter than the skew
    client, _clock, _ = make_client(stack, skew=600)
    try:
        for _ in range(5):
            assert (await client.complete(REQUEST)).path == "direct"
    finally:
        await client.aclose()
    assert len(stack.world.direct_access_calls) == 1


async def test_generations_go_through_the_monolith_without_details(stack):
    client, _clock, _ = make_client(stack)
    try:
        suggestion = await client.complete(GENERATION_REQUEST)
    finally:
        await client.aclose()
    assert (suggestion.path, suggestion.intent) == ("monolith", "generation")
    assert stack.world.direct_access_calls == []
    sent = stack.world.monolith_requests[0]
    assert sent["body"]["intent"] == "generation"
    assert sent["headers"]["private-token"] == GOOD_PAT


async def test_cancelled_completion_stops_its_http_call(stack):
    client, _clock, _ = make_client(stack)
    try:
        await client.complete(REQUEST)  # warm
        stack.world.model_delay = 3.0
        task = asyncio.create_task(client.complete(REQUEST))
        await eventually(lambda: stack.world.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: stack.world.disconnects == 1, within=2.0)
        stack.world.model_delay = 0.0
        assert (await client.complete(REQUEST)).path == "direct"  # breaker untouched
    finally:
        await client.aclose()


async def test_telemetry_is_folded_into_the_next_request(stack):
    client, _clock, _ = make_client(stack)
    try:
        shown = await client.complete(REQUEST)
        client.telemetry.accept(shown.model_engine, shown.model_name, shown.lang)
        await client.complete(REQUEST)
    finally:
        await client.aclose()
    first, second = (r["body"] for r in stack.world.gateway_requests)
    assert first["telemetry"] == []
    assert second["telemetry"] == [
        {"model_engine": "fake-engine", "model_name": "fake-model", "lang": "python",
         "requests": 1, "accepts": 1, "rejects": 0, "errors": 0}
    ]  # fmt: skip
    assert second["current_file"]["file_name"] == "app/main.py"
    assert second["prompt_version"] == 1


async def test_idle_client_refreshes_on_its_timer_without_any_completion(stack):
    client, clock, _ = make_client(stack)
    client.details.timer_check = 0.02  # re-read the moved clock often
    try:
        await client.complete(REQUEST)
        advance(stack, clock, 0.8 * stack.world.token_lifetime - 10)
        await asyncio.sleep(0.1)  # several timer rounds, none due yet
        assert len(stack.world.direct_access_calls) == 1
        advance(stack, clock, 11)
        await eventually(lambda: len(stack.world.direct_access_calls) == 2)
    finally:
        await client.aclose()
    assert len(stack.world.gateway_requests) == 1  # no completion was needed for it


async def test_failed_completion_counts_as_an_error_in_the_next_request(stack):
    client, _clock, _ = make_client(stack)
    try:
        await client.complete(REQUEST)
        stack.world.pats.discard(GOOD_PAT)  # the PAT gets revoked
        with pytest.raises(CompletionFailed):
            await client.complete(GENERATION_REQUEST)
        stack.world.pats.add(GOOD_PAT)
        await client.complete(GENERATION_REQUEST)
    finally:
        await client.aclose()
    sent = stack.world.monolith_requests[-1]["body"]["telemetry"]
    assert [(t["lang"], t["requests"], t["errors"]) for t in sent] == [("python", 1, 1)]
