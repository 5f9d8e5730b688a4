"""Portal configuration: environment variables with the `CODESUGGEST_PORTAL_` prefix."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from platformdirs import user_data_path
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from codesuggest.common import ports
from codesuggest.common.sealing import new_secret
from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME

DEFAULT_PORT = ports.PORTAL
SECRET_FILE = "portal.secret"


def _default_data_dir() -> Path:
    return user_data_path("codesuggest") / "portal"


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CODESUGGEST_PORTAL_", populate_by_name=True, extra="ignore"
    )

    url: str = Field(
        default=ports.local_url(DEFAULT_PORT),
        description="Public base URL: the `iss` of every token the portal signs.",
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CODESUGGEST_PORTAL_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; default sqlite:///<data_dir>/portal.db.",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="Seals private keys at rest; default: generated once into "
        "<data_dir>/portal.secret (mode 0600).",
    )
    token_lifetime: timedelta = timedelta(days=3)
    service_name: str = DEFAULT_SERVICE_NAME
    max_body_bytes: int = 64 * 1024
    access_per_hour: int = Field(
        default=60, ge=1, description="cloudConnectorAccess calls per license in any hour."
    )
    graphql_introspection: bool = Field(
        default=False, description="Answer GraphQL introspection (development only)."
    )

    @property
    def issuer(self) -> str:
        return self.url.rstrip("/")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'portal.db'}"

    def resolve_secret(self) -> str:
        """The sealing secret: from settings, else read (or create once, mode 0600) the file."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        path = self.data_dir / SECRET_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            value = new_secret(nbytes=32)
            fh.write(value + "\n")
        return value
