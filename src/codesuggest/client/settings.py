"""Where the client finds its instance URL and token: explicit settings (CLI flags,
`initializationOptions`, `workspace/didChangeConfiguration`), then the environment, then the
config file written by `codesuggest login`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codesuggest.client import config

TOKEN_ENV = "CODESUGGEST_TOKEN"
INSTANCE_ENV = "CODESUGGEST_INSTANCE_URL"
DEFAULT_DEBOUNCE = 0.1  # seconds


@dataclass(frozen=True)
class ClientSettings:
    instance_url: str | None
    token: str | None
    debounce: float = DEFAULT_DEBOUNCE
    project_path: str | None = None
    timeout: float = 5.0

    @property
    def complete(self) -> bool:
        return bool(self.instance_url and self.token)


def resolve(
    instance_url: str | None = None,
    token: str | None = None,
    token_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """Instance URL and token from the first place that has each."""
    env = os.environ if environ is None else environ
    stored = config.load()
    url = instance_url or env.get(INSTANCE_ENV) or (stored.instance_url if stored else None)
    secret = token
    if not secret and token_env:
        secret = env.get(token_env)
    if not secret:
        secret = env.get(TOKEN_ENV)
    if not secret and stored is not None and (url is None or _same_url(url, stored.instance_url)):
        secret = stored.token
    return (url.rstrip("/") if url else None), secret


def from_editor(raw: Any, environ: Mapping[str, str] | None = None) -> ClientSettings:
    """Settings an editor sends, either flat or under a `codesuggest` key:
    `instanceUrl`, `token`, `tokenEnv`, `debounceMs`, `projectPath`, `timeoutMs`."""
    section: Mapping[str, Any] = {}
    if isinstance(raw, Mapping):
        nested = raw.get("codesuggest")
        section = nested if isinstance(nested, Mapping) else raw
    url, token = resolve(
        _str(section, "instanceUrl", "instance_url"),
        _str(section, "token"),
        _str(section, "tokenEnv", "token_env"),
        environ,
    )
    debounce_ms = _number(section, "debounceMs", "debounce_ms")
    timeout_ms = _number(section, "timeoutMs", "timeout_ms")
    return ClientSettings(
        instance_url=url,
        token=token,
        debounce=DEFAULT_DEBOUNCE if debounce_ms is None else max(debounce_ms, 0) / 1000,
        project_path=_str(section, "projectPath", "project_path"),
        timeout=5.0 if timeout_ms is None else max(timeout_ms, 1) / 1000,
    )


def _str(section: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = section.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _number(section: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = section.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")
