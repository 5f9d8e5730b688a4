"""Helpers for the portal tests: a real portal on loopback, GraphQL calls, a PostgreSQL database.

Imported as `portal.helpers` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.app import create_app
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import ManualClock
from support.servers import ServerThread, free_port

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z

ACCESS_QUERY = """
query cloudConnectorAccess($licenseKey: String!, $gitlabVersion: String!) {
  cloudConnectorAccess(licenseKey: $licenseKey, gitlabVersion: $gitlabVersion) {
    serviceToken { token expiresAt }
    availableServices { name serviceStartTime bundledWith }
    catalog
  }
}
"""


def instance_headers(
    instance_id: str | None = None, host: str = "gitlab.example.com", version: str = "17.0.0"
) -> dict[str, str]:
    return {
        "x-gitlab-instance-id": instance_id or str(uuid.uuid4()),
        "x-gitlab-host-name": host,
        "x-gitlab-realm": "self-managed",
        "x-gitlab-version": version,
    }


@dataclass
class Portal:
    url: str
    app: FastAPI
    admin: PortalAdmin
    clock: ManualClock
    settings: PortalSettings
    http: httpx.Client
    instances: dict[str, str] = field(default_factory=dict)

    def access(
        self, license_key: str, headers: dict[str, str] | None = None, version: str = "17.0.0"
    ) -> httpx.Response:
        """Without `headers`, as the one instance this license serves (bound at first sync)."""
        if headers is None:
            instance_id = self.instances.setdefault(license_key, str(uuid.uuid4()))
            headers = instance_headers(instance_id)
        return self.http.post(
            "/graphql",
            json={
                "query": ACCESS_QUERY,
                "variables": {"licenseKey": license_key, "gitlabVersion": version},
            },
            headers=headers,
        )

    def license_with_addon(self, **kwargs: Any) -> str:
        created = self.admin.create_license(**kwargs)
        self.admin.add_addon(created.id)
        return created.key


def start_portal(
    database_url: str, data_dir: Path, **overrides: Any
) -> tuple[Portal, ServerThread]:
    port = free_port()
    clock = ManualClock(START)
    settings = PortalSettings(
        url=f"http://127.0.0.1:{port}", data_dir=data_dir, database_url=database_url, **overrides
    )
    app = create_app(settings, clock=clock)
    server = ServerThread(app, port=port).start()
    http = httpx.Client(base_url=server.url, timeout=10)
    return Portal(server.url, app, app.state.ctx.admin, clock, settings, http), server
