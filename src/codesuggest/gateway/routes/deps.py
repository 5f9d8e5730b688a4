"""What the gateway's routes declare in their signatures: the authenticated caller of each kind
of route. The completion routes call theirs directly (`completion_caller`, `generation_caller`:
the hot path skips FastAPI's dependency resolution, see docs/architecture.md), timed (the
request's start and, on refusals, a Server-Timing header)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from codesuggest.gateway.auth import requires
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.completions.timing import server_timing, timings_of
from codesuggest.gateway.context import GatewayContext
from codesuggest.gateway.errors import GatewayError
from codesuggest.tokens import COMPLETE_CODE, GENERATE_CODE

COMPLETIONS_REFUSAL = "Unauthorized to access code completions"
GENERATIONS_REFUSAL = "Unauthorized to access code generations"
MINT_REFUSAL = "Unauthorized to create user access token"
REVOCATION_REFUSAL = "Unauthorized to revoke user tokens"


def timed_auth(
    scope: str, *, user_tokens: bool, refusal: str
) -> Callable[[Request, GatewayContext], Awaitable[Caller]]:
    """The auth dependency, plus the request's start time and Server-Timing on refusals; a
    token refused for its rate moments ago is refused again before it is verified."""
    inner = requires(scope, user_tokens=user_tokens, refusal=refusal)

    async def dependency(request: Request, context: GatewayContext) -> Caller:
        started = request.state.started = time.perf_counter()
        try:
            context.fairness.refuse_known(request.headers.get("authorization"))
            return await inner(request, context)
        except GatewayError as exc:
            timings = timings_of(request)
            timings["total"] = time.perf_counter() - started
            exc.headers = {**(exc.headers or {}), "Server-Timing": server_timing(timings)}
            raise

    return dependency


completion_caller = timed_auth(COMPLETE_CODE, user_tokens=True, refusal=COMPLETIONS_REFUSAL)
generation_caller = timed_auth(GENERATE_CODE, user_tokens=False, refusal=GENERATIONS_REFUSAL)
MintingCaller = Annotated[
    Caller, Depends(requires(COMPLETE_CODE, user_tokens=False, refusal=MINT_REFUSAL))
]
RevokingCaller = Annotated[
    Caller, Depends(requires(COMPLETE_CODE, user_tokens=False, refusal=REVOCATION_REFUSAL))
]
