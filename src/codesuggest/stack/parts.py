"""How each part is launched: its `codesuggest <part> serve` command line and its environment."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from codesuggest.gateway.completions.settings import CompletionsSettings
from codesuggest.stack.layout import HOST, Layout

# Settings that would point a part at shared infrastructure; the one-machine stack uses SQLite
# files in its data directory and in-process state, so these never leak into its children.
_SHARED_ENV = ("DATABASE_URL", "REDIS_URL")
_PREFIX = {
    "portal": "CODESUGGEST_PORTAL_",
    "self-managed": "CODESUGGEST_INSTANCE_",
    "saas": "CODESUGGEST_INSTANCE_",
    "gateway": "CODESUGGEST_GATEWAY_",
}
_COMMAND = {
    "portal": "portal",
    "self-managed": "instance",
    "saas": "instance",
    "gateway": "gateway",
}
MARKER = "codesuggest.stack.serve_part"
"""Appears in every child's command line, so `down` can tell our processes from a reused pid."""


def command(part: str, layout: Layout) -> list[str]:
    serve = [sys.executable, "-m", MARKER, _COMMAND[part], "serve"]
    if part == "gateway":
        serve += ["--workers", "1"]  # one developer's stack: one process, one embedded engine
    return [*serve, "--host", HOST, "--port", str(layout.port(part))]


def part_settings(part: str, layout: Layout, license_key: str | None) -> dict[str, str]:
    """The part's settings, without prefix (e.g. `{"url": ...}`)."""
    if part == "portal":
        return {"url": layout.url("portal"), "data_dir": str(layout.part_dir("portal"))}
    if part == "gateway":
        issuers = [
            {"url": layout.url("portal"), "kind": "portal"},
            {"url": layout.url("saas"), "kind": "saas-instance"},
        ]
        return {
            "public_url": layout.url("gateway"),
            "trusted_issuers": json.dumps(issuers),
            "data_dir": str(layout.part_dir("gateway")),
            # Usage goes to the self-managed instance, whose admin dashboard charts it.
            "usage__sink": "http",
            "usage__http_url": layout.url("self-managed") + "/api/v4/usage/events",
        }
    settings = {
        "url": layout.url(part),
        "data_dir": str(layout.part_dir(part)),
        "database_url": f"sqlite:///{layout.part_dir(part) / 'instance.db'}",
        "realm": part,
        "gateway_url": layout.url("gateway"),
        "edge_url": layout.edge_url,
        "portal_url": layout.url("portal"),
    }
    if part == "self-managed" and license_key:
        settings["license_key"] = license_key
    return settings


def environment(
    part: str,
    layout: Layout,
    license_key: str | None,
    base: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`base` (default: our environment) without shared-infrastructure settings, plus the
    part's settings, plus `overrides` (full variable names; e.g. a benchmark's relays)."""
    env = dict(os.environ if base is None else base)
    for name in _SHARED_ENV:
        env.pop(name, None)
        for prefix in set(_PREFIX.values()):
            env.pop(prefix + name, None)
    prefix = _PREFIX[part]
    env.update(
        {
            prefix + key.upper(): value
            for key, value in part_settings(part, layout, license_key).items()
        }
    )
    env.update(overrides or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def gateway_completions(env: Mapping[str, str]) -> CompletionsSettings:
    """The completion settings a gateway started with `env` runs with (for the summary)."""
    prefix = _PREFIX["gateway"] + "COMPLETIONS__"
    values: dict[str, object] = {}
    for name, value in env.items():
        if name.upper().startswith(prefix):
            field = name[len(prefix) :].lower()
            values[field] = json.loads(value) if value.startswith("[") else value
    return CompletionsSettings.model_validate(values)
