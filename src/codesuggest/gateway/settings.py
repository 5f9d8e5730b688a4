"""Gateway configuration (env prefix `CODESUGGEST_GATEWAY_`; nested fields use `__`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from codesuggest.common import ports
from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.gateway.fairness import FairnessSettings
from codesuggest.gateway.usage.settings import UsageSettings
from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME


class TrustedIssuer(BaseModel):
    """An issuer whose tokens the gateway accepts. `portal` issues self-managed instance tokens;
    `saas-instance` issues SaaS instance tokens and user tokens (`token_kind: user`)."""

    url: str
    kind: Literal["portal", "saas-instance"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CODESUGGEST_GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = DEFAULT_SERVICE_NAME
    public_url: str = ports.local_url(ports.GATEWAY)
    trusted_issuers: list[TrustedIssuer] = []
    data_dir: Path = Path(user_data_dir("codesuggest")) / "gateway"
    # The key that signs user tokens, and an older one still accepted during rotation.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    validation_key: SecretStr | None = None
    validation_key_file: Path | None = None
    leeway: float = 30.0
    user_token_lifetime: int = 3600
    jwks_min_refetch_interval: float = 30.0
    jwks_retry_max: float = 30.0
    jwks_timeout: float = 5.0
    log_level: str = "INFO"
    shutdown_delay: float = 0.0
    """Seconds between SIGTERM and closing the port, answering `/monitoring/ready` 503 while
    still serving, so a load balancer stops sending first (Kubernetes: a few seconds)."""
    # Shared state of the replicas (revoked user tokens): Redis when set, else a file in
    # the data directory (docs/gateway.md, "Revocation").
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CODESUGGEST_GATEWAY_REDIS_URL", "REDIS_URL"),
    )
    redis_prefix: str = "codesuggest:gateway:"
    revocation_sync_interval: float = Field(default=2.0, gt=0)
    """Seconds between two copies of the shared revocations into a process's memory."""

    # --- completions: models and prompts (owned by gateway/completions; docs/models.md) ---
    # env: CODESUGGEST_GATEWAY_COMPLETIONS__<FIELD>, e.g. ..._COMPLETIONS__PROVIDER=openai
    completions: CompletionsSettings = CompletionsSettings()
    # --- per-user rate limit and concurrency cap (gateway/fairness.py; docs/gateway.md) ---
    fairness: FairnessSettings = FairnessSettings()
    # --- usage tracking: outbox and sink (gateway/usage; docs/usage.md) ---
    usage: UsageSettings = UsageSettings()
