"""Instance configuration (env prefix `CODESUGGEST_INSTANCE_`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codesuggest.common import ports
from codesuggest.tokens import REALM_SELF_MANAGED

Realm = Literal["saas", "self-managed"]
CONTEXT_KINDS = ("open_tabs", "imports")
"""Context kinds an instance can allow IDEs to send with completions (GitLab's names)."""


def parse_contexts(value: str) -> str:
    """A space- or comma-separated list of context kinds, normalized; ValueError names the bad
    ones."""
    kinds = [k for k in value.replace(",", " ").split() if k]
    unknown = sorted(set(kinds) - set(CONTEXT_KINDS))
    if unknown:
        raise ValueError(
            f"unknown code suggestion contexts {', '.join(unknown)}: "
            f"choose from {', '.join(CONTEXT_KINDS)}"
        )
    return " ".join(dict.fromkeys(kinds))


# Fields of the `application_settings` row: seeded from these settings on first start, and
# overwritten on later starts only by values that were set explicitly (env or constructor).
SEEDED_FIELDS = (
    "realm",
    "host_name",
    "version",
    "gateway_url",
    "edge_url",
    "disabled_direct_code_suggestions",
    "model_provider",
    "model_name",
    "code_suggestions_contexts",
)


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("codesuggest")) / "instance"


class InstanceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODESUGGEST_INSTANCE_", extra="ignore")

    url: str = ports.local_url(ports.INSTANCE)
    """The instance's own public URL: `iss` of every token it signs (SaaS). `instance serve`
    without it: the address it listens on."""
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CODESUGGEST_INSTANCE_DATABASE_URL", "DATABASE_URL"),
    )
    secret: str | None = None
    realm: Realm = REALM_SELF_MANAGED
    host_name: str | None = None
    version: str = "18.3.0"
    """The GitLab release whose API this instance answers like: IDEs gate features on it
    (direct access from 17.2, the Duo feature queries from 17.9, connection details from 18.3)."""
    revision: str = "codesuggest"
    gateway_url: str = ports.local_url(ports.GATEWAY)
    edge_url: str | None = None
    allowed_gateway_urls: list[str] = []
    """Further URLs an admin may set as `gateway_url`/`edge_url` through the API (the instance
    token goes there); `gateway_url` and `edge_url` above are always allowed."""
    portal_url: str = ports.local_url(ports.PORTAL)
    license_key: str | None = None
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CODESUGGEST_INSTANCE_REDIS_URL", "REDIS_URL"),
    )
    redis_prefix: str = "codesuggest:instance:"
    redis_timeout: float = Field(default=2.0, gt=0)
    """Seconds a Redis call may take before Redis counts as down (a refused connection fails at
    once). It bounds a Redis that hangs; kept well above the pauses of a busy event loop, which
    are no outage: a shorter one made every process mint its own user token under load."""
    saas_user_tokens: Literal["self", "gateway"] = "self"
    gateway_audience: str = "gitlab-ai-gateway"
    disabled_direct_code_suggestions: bool = False
    model_provider: str | None = None
    model_name: str | None = None
    code_suggestions_contexts: str = "open_tabs imports"
    """Space-separated context kinds IDEs may send with completions: `open_tabs`, `imports`
    (empty: none)."""

    gateway_timeout: float = 3.0
    """Budget in seconds for minting a user token through the gateway."""
    completions_timeout: float = 60.0
    """Budget for the monolith path's gateway call (models can be slow)."""
    direct_access_per_minute: int = 50
    completions_per_minute: int = 60
    sync_enabled: bool = True
    """Run the hourly token sync in the server (self-managed, with a license key)."""
    sync_interval: float = 3600.0
    sync_retry_initial: float = 30.0
    portal_timeout: float = 10.0
    revocation_poll_interval: float = 1.0
    """How often the outbox of revocations for the gateway is read (a change made by this
    process is pushed at once; this catches the CLI's and other processes')."""
    revocation_retry_max: float = 10.0
    """Longest wait between two attempts to push a revocation the gateway did not take."""
    usage_sink_enabled: bool = True
    """Accept usage events the gateway ships to `POST /api/v4/usage/events`."""
    admin_session_hours: float = Field(default=12.0, gt=0)
    """How long a sign-in to the admin pages (`/admin`) lasts."""
    admin_sign_in_failures: int = Field(default=5, ge=1)
    """Wrong passwords in a row that lock a user's sign-in ..."""
    admin_lockout_seconds: float = Field(default=900.0, gt=0)
    """... for this long."""
    admin_sign_in_per_minute: int = Field(default=20, ge=1)
    """Sign-in attempts per client address and minute, whatever the username."""

    @field_validator("code_suggestions_contexts")
    @classmethod
    def _known_contexts(cls, value: str) -> str:
        return parse_contexts(value)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'instance.db'}"

    def gateway_urls(self) -> set[str]:
        """Where the instance token may be sent: the deploy-time gateway and edge URLs."""
        urls = [self.gateway_url, self.edge_url, *self.allowed_gateway_urls]
        return {url.rstrip("/") for url in urls if url}

    def resolved_host_name(self) -> str:
        return self.host_name or urlsplit(self.url).hostname or "localhost"

    def resolved_secret(self) -> str:
        """The configured secret, else the one in `<data_dir>/instance.secret` (created 0600)."""
        if self.secret:
            return self.secret
        path = self.data_dir / "instance.secret"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value
