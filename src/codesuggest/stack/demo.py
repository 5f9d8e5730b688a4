"""`codesuggest demo`: the whole system walked through once against the running stack.

Each step prints the diagram's arrow numbers, what happened, and how long it took; the last
step sends the same completion over the direct path and the monolith path, interleaved, and
shows their latencies side by side. Any failed step ends the demo with a non-zero exit.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from rich.console import Console
from rich.table import Table

from codesuggest.instance.store import open_store
from codesuggest.instance.sync import newest_live_token, sync_once
from codesuggest.stack.layout import Layout
from codesuggest.stack.provision import instance_settings
from codesuggest.tokens import SystemClock

COMPLETION_ROUNDS = 10
SAMPLE = {
    "prompt_version": 1,
    "project_path": "demo/project",
    "current_file": {
        "file_name": "app/files.py",
        "language_identifier": "python",
        "content_above_cursor": "import os\n\n\ndef read_file(path):\n    with open(path) as f:\n"
        "        return f.",
        "content_below_cursor": "\n",
    },
    "stream": False,
}


class StepFailed(Exception):
    pass


@dataclass
class Demo:
    layout: Layout
    state: dict[str, Any]
    console: Console
    rounds: int = COMPLETION_ROUNDS
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60.0))
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, arrows: str, title: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            result = action()
        except (StepFailed, httpx.HTTPError) as exc:
            ms = (time.perf_counter() - started) * 1000
            self.console.print(f"[red]✗ [{arrows}] {title} ({ms:.1f} ms): {exc}[/red]")
            raise StepFailed(f"step [{arrows}] {title}: {exc}") from exc
        ms = (time.perf_counter() - started) * 1000
        self.console.print(
            f"[green]✓[/green] [bold][{arrows}][/bold] {title}  [cyan]{ms:.1f} ms[/cyan]"
        )
        if result:
            self.console.print(f"      {result}", highlight=False, soft_wrap=True)

    # Steps

    def sync(self) -> str:
        settings = instance_settings("self-managed", self.layout, self.state.get("license_key"))
        store = open_store(settings)

        async def once() -> Any:
            async with httpx.AsyncClient() as http:
                return await sync_once(store, settings, http, SystemClock(), force=True)

        try:
            result = asyncio.run(once())
        finally:
            store.dispose()
        if not result.ok:
            raise StepFailed(result.reason)
        return f"{result.outcome}: {result.reason}; instance token expires {result.expires_at}"

    def issuer_keys(self, base: str) -> str:
        discovery = self._ok(self.http.get(f"{base}/.well-known/openid-configuration"))
        keys = self._ok(self.http.get(discovery["jwks_uri"]))["keys"]
        kids = ", ".join(key["kid"][:12] + "…" for key in keys)
        return f"jwks_uri {discovery['jwks_uri']} -> {len(keys)} key(s): {kids}"

    def direct_access(self, realm: str) -> str:
        instance = self.layout.url(realm)
        pat = self.state["instances"][realm]["user_pat"]
        body = self._ok(
            self.http.post(
                f"{instance}/api/v4/code_suggestions/direct_access", headers={"PRIVATE-TOKEN": pat}
            ),
            expect=201,
        )
        self.details[realm] = body
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        kind = claims.get("token_kind", "user (gateway-minted)")
        return (
            f"user token from iss={claims['iss']} ({kind}), realm={claims.get('gitlab_realm')}, "
            f"lifetime {claims['exp'] - claims['iat']} s, base_url {body['base_url']}"
        )

    def gateway_mint(self) -> str:
        """What the instance does inside direct_access: its IJWT for a user token."""
        settings = instance_settings("self-managed", self.layout, self.state.get("license_key"))
        store = open_store(settings)
        try:
            with store.session() as session:
                ijwt = newest_live_token(session, SystemClock().now())
        finally:
            store.dispose()
        if ijwt is None:
            raise StepFailed("the self-managed instance holds no live instance token")
        headers = dict(self.details["self-managed"]["headers"])
        headers["Authorization"] = f"Bearer {ijwt}"
        url = f"{self.layout.edge_url}/auth/v1/code/user_access_token"
        minted = self._ok(self.http.post(url, headers=headers))
        claims = jwt.decode(minted["token"], options={"verify_signature": False})
        return f"POST {url} with the IJWT -> user token for sub={claims['sub'][:16]}…"

    def completions(self) -> str:
        warm = {realm: self._direct(realm) for realm in ("self-managed", "saas")}
        for realm in warm:
            self._monolith(realm)
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(self.rounds):
            for realm in ("self-managed", "saas"):
                for path, call in (("direct", self._direct), ("monolith", self._monolith)):
                    t0 = time.perf_counter()
                    call(realm)
                    samples.setdefault((realm, path), []).append((time.perf_counter() - t0) * 1000)
        table = Table(title=f"same completion, {self.rounds} rounds interleaved (ms)")
        for column in ("realm", "direct p50", "monolith p50", "saved", "suggestion"):
            table.add_column(column)
        for realm in ("self-managed", "saas"):
            direct = statistics.median(samples[(realm, "direct")])
            monolith = statistics.median(samples[(realm, "monolith")])
            table.add_row(
                realm,
                f"{direct:.1f}",
                f"{monolith:.1f}",
                f"{monolith - direct:.1f} ({(1 - direct / monolith) * 100:.0f}%)",
                repr(warm[realm])[:40],
            )
        self.console.print(table)
        return ""

    def _direct(self, realm: str) -> str | None:
        details = self.details[realm]
        headers = dict(details["headers"], Authorization=f"Bearer {details['token']}")
        body = self._ok(
            self.http.post(f"{details['base_url']}/v2/completions", headers=headers, json=SAMPLE)
        )
        return _text(body)

    def _monolith(self, realm: str) -> str | None:
        url = f"{self.layout.url(realm)}/api/v4/code_suggestions/completions"
        pat = self.state["instances"][realm]["user_pat"]
        body = dict(SAMPLE, intent="completion")
        return _text(self._ok(self.http.post(url, headers={"PRIVATE-TOKEN": pat}, json=body)))

    @staticmethod
    def _ok(response: httpx.Response, expect: int = 200) -> dict[str, Any]:
        if response.status_code != expect:
            raise StepFailed(
                f"{response.request.method} {response.request.url} -> HTTP "
                f"{response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def run(self) -> None:
        portal, saas = self.layout.url("portal"), self.layout.url("saas")
        c = self.console
        c.rule("Self-managed instance: daily token sync with the portal")
        self.step("1-4", "instance -> portal: cloudConnectorAccess with the license key", self.sync)
        c.rule("End-user authentication (self-managed)")
        self.step(
            "5-18",
            "client -> instance: direct_access with the PAT (PAT, seat, then the gateway mints)",
            lambda: self.direct_access("self-managed"),
        )
        self.step(
            "8, 13-15", "instance -> gateway: user_access_token with the IJWT", self.gateway_mint
        )
        self.step(
            "9-12",
            "gateway -> portal: openid-configuration, then the JWKS (cached after first use)",
            lambda: self.issuer_keys(portal),
        )
        c.rule("End-user authentication (SaaS)")
        self.step(
            "5-7, 16-18",
            "client -> instance: direct_access with the PAT (the instance signs the user token)",
            lambda: self.direct_access("saas"),
        )
        self.step(
            "32-35",
            "gateway -> SaaS instance: openid-configuration, then the JWKS",
            lambda: self.issuer_keys(saas),
        )
        c.rule("Code suggestions: direct path (client -> edge -> gateway) vs monolith path")
        self.step(
            "30, 36-38",
            "completions with the user token, and the same request through the instance",
            self.completions,
        )


def _text(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or []
    return choices[0].get("text") if choices else None
