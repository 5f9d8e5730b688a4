"""`POST /v2/completions`, `/v2/code/completions` (any token with `complete_code`) and
`/v2/code/generations` (instance tokens with `generate_code`). The edge prefix `/ai/...` is
rewritten to these paths by the app's EdgeRoutes middleware, so they are registered once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from codesuggest.gateway.auth import Caller, requires
from codesuggest.gateway.completions.service import CompletionService
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.completions.timing import server_timing, timings_of
from codesuggest.gateway.errors import GatewayError
from codesuggest.gateway.providers import ProviderRegistry, build_registry
from codesuggest.tokens import COMPLETE_CODE, GENERATE_CODE

COMPLETIONS_REFUSAL = "Unauthorized to access code completions"
GENERATIONS_REFUSAL = "Unauthorized to access code generations"


def timed_auth(scope: str, *, user_tokens: bool, refusal: str) -> Callable[..., Any]:
    """The lead's auth dependency, plus the request's start time and Server-Timing on refusals."""
    inner = requires(scope, user_tokens=user_tokens, refusal=refusal)

    async def dependency(request: Request) -> Caller:
        started = request.state.started = time.perf_counter()
        try:
            return await inner(request)
        except GatewayError as exc:
            timings = timings_of(request)
            timings["total"] = time.perf_counter() - started
            exc.headers = {**(exc.headers or {}), "Server-Timing": server_timing(timings)}
            raise

    return dependency


def build_router(
    settings: CompletionsSettings, registry: ProviderRegistry | None = None
) -> APIRouter:
    """The completion routes over the configured providers (started with the app)."""
    registry = registry or build_registry(settings)
    service = CompletionService(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.completions = service
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None and service.stage_seconds is None:
            service.register_metrics(metrics.registry)
        await registry.start()
        try:
            yield
        finally:
            await registry.aclose()

    router = APIRouter(lifespan=lifespan)
    completions_auth = timed_auth(COMPLETE_CODE, user_tokens=True, refusal=COMPLETIONS_REFUSAL)
    generations_auth = timed_auth(GENERATE_CODE, user_tokens=False, refusal=GENERATIONS_REFUSAL)

    @router.post("/v2/completions")
    @router.post("/v2/code/completions")
    async def completions(request: Request, caller: Caller = Depends(completions_auth)) -> Response:
        return await service.handle(request, caller, generation=False)

    @router.post("/v2/code/generations")
    async def generations(request: Request, caller: Caller = Depends(generations_auth)) -> Response:
        return await service.handle(request, caller, generation=True)

    return router
