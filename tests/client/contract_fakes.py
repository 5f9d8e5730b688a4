"""A fake instance and a fake gateway that speak docs/contracts.md sections 4-6 over real HTTP,
with fault switches: slow `direct_access`, slow model, status overrides, direct connections
disabled, rate limiting, and a server clock of their own (sent in `Date`) that tests move.

Stopping the gateway is done by stopping its `ServerThread`.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from codesuggest.tokens.clock import ManualClock

GOOD_PAT = "glpat-good"
OTHER_PAT = "glpat-other"
MODEL = {"engine": "fake-engine", "name": "fake-model"}


@dataclass
class World:
    """Shared state of the fake instance and gateway; tests flip its switches."""

    clock: ManualClock = field(default_factory=ManualClock)
    gateway_url: str = ""
    token_lifetime: float = 3600.0
    direct_access_delay: float = 0.0
    model_delay: float = 0.0
    disabled: bool = False
    rate_limited_for: int | None = None  # Retry-After seconds when set
    gateway_statuses: list[int] = field(default_factory=list)  # next answers, then 200
    pats: set[str] = field(default_factory=lambda: {GOOD_PAT, OTHER_PAT})
    tokens: dict[str, float] = field(default_factory=dict)  # token -> exp (server clock)
    direct_access_calls: list[float] = field(default_factory=list)  # server clock
    direct_access_pats: list[str] = field(default_factory=list)
    gateway_requests: list[dict[str, Any]] = field(default_factory=list)
    monolith_requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    disconnects: int = 0
    _serial: itertools.count = field(default_factory=itertools.count)

    def reset(self) -> None:
        gateway_url = self.gateway_url
        self.__init__()  # type: ignore[misc]
        self.gateway_url = gateway_url

    def date(self) -> str:
        return email.utils.formatdate(self.clock.now(), usegmt=True)

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        above = body["current_file"]["content_above_cursor"]
        lang = body["current_file"].get("language_identifier") or "python"
        text = "return a + b" if above.rstrip().endswith(":") or "def" in above else "pass"
        if above.endswith("f.r"):  # mid-word: the rest of `read()`
            text = "ead()"
        return {
            "id": f"cmpl-{next(self._serial)}",
            "object": "text_completion",
            "created": int(self.clock.now()),
            "model": {**MODEL, "lang": lang},
            "experiments": [],
            "choices": [{"text": text, "index": 0, "finish_reason": "length"}],
            "metadata": {"enabled_feature_flags": []},
        }

    async def run_model(self, request: Request) -> bool:
        """Wait the model's delay; False when the caller hung up meanwhile."""
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + self.model_delay
            while loop.time() < end:
                if await request.is_disconnected():
                    self.disconnects += 1
                    return False
                await asyncio.sleep(min(0.01, end - loop.time()))
            return True
        finally:
            self.in_flight -= 1


def _pat(request: Request) -> str | None:
    pat = request.headers.get("private-token")
    if pat:
        return pat
    auth = request.headers.get("authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def _monolith_error(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, status, headers={"X-GitLab-Error-Origin": "monolith", **headers})


def instance_app(world: World) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v4/code_suggestions/direct_access")
    async def direct_access(request: Request) -> JSONResponse:
        world.direct_access_calls.append(world.clock.now())
        pat = _pat(request)
        world.direct_access_pats.append(pat or "")
        if pat not in world.pats:
            return _monolith_error(401, {"message": "401 Unauthorized"})
        if world.disabled:
            return _monolith_error(
                403, {"message": "403 Forbidden - Direct connections are disabled"}
            )
        if world.rate_limited_for is not None:
            return _monolith_error(
                429,
                {
                    "message": {
                        "error": "This endpoint has been requested too many times. Try again later."
                    }
                },
                **{"Retry-After": str(world.rate_limited_for)},
            )
        await asyncio.sleep(world.direct_access_delay)
        token = f"ujwt-{next(world._serial)}-{pat}"
        expires_at = int(world.clock.now() + world.token_lifetime)
        world.tokens[token] = expires_at
        body = {
            "base_url": world.gateway_url,
            "token": token,
            "expires_at": expires_at,
            "headers": {
                "x-gitlab-global-user-id": f"user-{pat}",
                "x-gitlab-instance-id": "instance-1",
                "x-gitlab-realm": "self-managed",
                "x-gitlab-host-name": "fake.example",
                "x-gitlab-version": "17.0.0",
                "x-gitlab-feature-enablement-type": "duo_pro",
                "X-Gitlab-Authentication-Type": "oidc",
            },
        }
        return JSONResponse(body, 201, headers={"Date": world.date()})

    @app.get("/api/v4/user")
    async def user(request: Request) -> JSONResponse:
        if _pat(request) not in world.pats:
            return _monolith_error(401, {"message": "401 Unauthorized"})
        return JSONResponse({"id": 1, "username": "alice"})

    @app.post("/api/v4/code_suggestions/completions")
    async def completions(request: Request) -> JSONResponse:
        if _pat(request) not in world.pats:
            return _monolith_error(401, {"message": "401 Unauthorized"})
        body = await request.json()
        world.monolith_requests.append({"headers": dict(request.headers), "body": body})
        if not await world.run_model(request):
            return JSONResponse({"detail": "client went away"}, 499)
        return JSONResponse(world.completion(body), headers={"Date": world.date()})

    return app


def gateway_app(world: World) -> FastAPI:
    app = FastAPI()

    @app.post("/v2/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        world.gateway_requests.append({"headers": dict(request.headers), "body": body})
        if world.gateway_statuses:
            status = world.gateway_statuses.pop(0)
            detail = {"error": "Forbidden by auth provider"} if status == 401 else {}
            return JSONResponse(detail or {"detail": "Inference failed"}, status)
        auth = request.headers.get("authorization", "")
        if request.headers.get("x-gitlab-authentication-type") != "oidc":
            return JSONResponse(
                {"error": "Invalid authentication token type - only OIDC is supported"}, 401
            )
        token = auth.removeprefix("Bearer ")
        if world.tokens.get(token, 0) <= world.clock.now():
            return JSONResponse({"error": "Forbidden by auth provider"}, 401)
        if not await world.run_model(request):
            return JSONResponse({"detail": "client went away"}, 499)
        return JSONResponse(
            world.completion(body),
            headers={"Server-Timing": "model;dur=1.5, total;dur=2.25", "Date": world.date()},
        )

    return app
