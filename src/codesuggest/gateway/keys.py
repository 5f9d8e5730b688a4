"""The gateway's own keys: one signing key plus an optional older validation key (rotation)."""

from __future__ import annotations

from pathlib import Path

from codesuggest.gateway.settings import GatewaySettings
from codesuggest.tokens import PrivateKey, PublicKey


def _load(pem, path: Path | None) -> PrivateKey | None:  # type: ignore[no-untyped-def]
    if pem is not None:
        return PrivateKey.from_pem(pem.get_secret_value())
    if path is not None:
        return PrivateKey.from_file(path)
    return None


def load_signing_key(settings: GatewaySettings) -> PrivateKey:
    """The configured signing key; with none configured, one generated on first start into the
    data directory (mode 0600), which is what the one-machine stack uses."""
    key = _load(settings.signing_key, settings.signing_key_file)
    if key is not None:
        return key
    path = settings.data_dir / "signing-key.pem"
    if path.exists():
        return PrivateKey.from_file(path)
    key = PrivateKey.generate()
    key.write(path)
    return key


def load_validation_keys(settings: GatewaySettings) -> list[PublicKey]:
    key = _load(settings.validation_key, settings.validation_key_file)
    return [key.public] if key is not None else []
