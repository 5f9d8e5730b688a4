"""A real gateway on loopback that trusts two real issuers (a portal and a SaaS instance)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import Depends

from codesuggest.gateway.app import create_app
from codesuggest.gateway.auth import requires
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from codesuggest.tokens import COMPLETE_CODE, ManualClock
from support.issuer import Issuer, wait_until
from support.servers import ServerThread

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"


def add_protected_route(app) -> None:  # type: ignore[no-untyped-def]
    """An empty route behind the auth layer (any token with complete_code)."""

    @app.post("/test/protected")
    async def protected(
        caller: Caller = Depends(
            requires(
                COMPLETE_CODE, user_tokens=True, refusal="Unauthorized to access code completions"
            )
        ),
    ) -> dict:
        return {"sub": caller.claims["sub"], "path": caller.path, "user": caller.global_user_id}


@dataclass
class GatewayEnv:
    portal: Issuer
    saas: Issuer
    gateway: ServerThread
    clock: ManualClock
    settings: GatewaySettings

    @property
    def url(self) -> str:
        return self.gateway.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_gateway(
    tmp: Path, issuers: list[TrustedIssuer], clock: ManualClock, **overrides
) -> tuple[ServerThread, GatewaySettings]:  # type: ignore[no-untyped-def]
    settings = GatewaySettings(
        trusted_issuers=issuers,
        data_dir=tmp,
        jwks_retry_max=0.2,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    add_protected_route(app)
    server = ServerThread(app).start()
    return server, settings


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayEnv]:
    portal = Issuer("self-managed").start()
    saas = Issuer("saas").start()
    clock = ManualClock()
    server, settings = start_gateway(
        tmp_path_factory.mktemp("gateway"),
        [
            TrustedIssuer(url=portal.url, kind="portal"),
            TrustedIssuer(url=saas.url, kind="saas-instance"),
        ],
        clock,
    )
    env = GatewayEnv(portal, saas, server, clock, settings)
    with env.client() as c:
        wait_until(lambda: c.get("/monitoring/ready").status_code == 200, what="gateway ready")
    yield env
    server.stop()
    portal.stop()
    saas.stop()
