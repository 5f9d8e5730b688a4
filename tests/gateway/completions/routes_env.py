"""A real gateway on loopback whose default provider is a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.app import create_app
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
from codesuggest.tokens import ManualClock
from gateway.providers.fake_servers import FakeOpenAI
from support.issuer import Issuer, instance_headers, wait_until
from support.servers import ServerThread

INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
USER_ID = "user-gid-1"
MODEL = "fake-starcoder2"


class MemoryRecorder:
    """Keeps recorded usage events in memory so tests can read what the routes emitted."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    async def record(self, *events: UsageEvent) -> None:
        self.events.extend(events)

    def submit(self, *events: UsageEvent) -> asyncio.Future[None]:
        self.events.extend(events)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def named(self, name: str) -> list[UsageEvent]:
        return [e for e in self.events if e.name == name]


@dataclass
class Env:
    gateway: ServerThread
    model: FakeOpenAI
    portal: Issuer
    saas: Issuer
    usage: MemoryRecorder
    clock: ManualClock
    extra: dict = field(default_factory=dict)

    def client(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.url, timeout=timeout)

    def user_headers(self) -> dict[str, str]:
        token = self.saas.user_token(USER_ID, INSTANCE_ID, clock=self.clock)
        headers = instance_headers(token, INSTANCE_ID, realm="saas")
        headers["X-Gitlab-Global-User-Id"] = USER_ID
        return headers

    def instance_headers(self) -> dict[str, str]:
        token = self.portal.instance_token(INSTANCE_ID, clock=self.clock)
        return instance_headers(token, INSTANCE_ID)


@contextmanager
def saas_gateway(
    data_dir: Path, completions: CompletionsSettings | None = None
) -> Iterator[tuple[ServerThread, Issuer, ManualClock]]:
    """A real gateway trusting one SaaS issuer, its usage events kept in memory."""
    saas = Issuer("saas").start()
    clock = ManualClock()
    settings = GatewaySettings(
        trusted_issuers=[TrustedIssuer(url=saas.url, kind="saas-instance")],
        data_dir=data_dir,
        completions=completions or CompletionsSettings(),
    )
    app = create_app(settings, clock=clock)
    server = ServerThread(app).start()
    app.state.ctx.usage = MemoryRecorder()
    try:
        yield server, saas, clock
    finally:
        server.stop()
        saas.stop()


def completion_body(**overrides) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "prompt_version": 1,
        "project_path": "group/project",
        "project_id": 42,
        "current_file": {
            "file_name": "app/main.py",
            "language_identifier": "python",
            "content_above_cursor": "def add(a, b):\n    ",
            "content_below_cursor": "\n",
        },
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    model = FakeOpenAI().start()
    portal = Issuer("self-managed").start()
    saas = Issuer("saas").start()
    clock = ManualClock()
    settings = GatewaySettings(
        trusted_issuers=[
            TrustedIssuer(url=portal.url, kind="portal"),
            TrustedIssuer(url=saas.url, kind="saas-instance"),
        ],
        data_dir=tmp_path_factory.mktemp("gateway"),
        jwks_retry_max=0.2,
        completions=CompletionsSettings(
            provider="openai",
            openai_base_url=model.url + "/v1",
            openai_model=MODEL,
            openai_extra_models=["qwen2.5-coder-1.5b"],
            embedded_enabled=False,
            # Short enough for the hanging-model tests, long enough for a loaded machine.
            request_timeout=3.0,
        ),
    )
    app = create_app(settings, clock=clock)
    gateway = ServerThread(app).start()
    usage = MemoryRecorder()
    app.state.ctx.usage = usage
    env = Env(gateway, model, portal, saas, usage, clock)
    with env.client() as c:
        wait_until(lambda: c.get("/monitoring/ready").status_code == 200, what="gateway ready")
    yield env
    gateway.stop()
    model.stop()
    portal.stop()
    saas.stop()


@pytest.fixture
def gw(env: Env) -> Env:
    env.model.reset()
    env.usage.events.clear()
    return env
