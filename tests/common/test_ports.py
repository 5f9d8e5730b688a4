"""The parts' defaults fit together: bare `codesuggest <part> serve` processes find one another
where `codesuggest up` would put them (docs/operations.md, "A trial on one machine")."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.main import get_command

from codesuggest.common import ports
from codesuggest.gateway.cli import app as gateway_cli
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.instance.cli import app as instance_cli
from codesuggest.instance.settings import InstanceSettings
from codesuggest.portal.cli import app as portal_cli
from codesuggest.portal.settings import PortalSettings
from codesuggest.stack.layout import DEFAULT_PORT_BASE, Layout


def serve_port(app: typer.Typer) -> int:
    serve = get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return next(int(p.default) for p in serve.params if p.name == "port")


def test_serve_listens_where_the_others_look(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "CODESUGGEST_INSTANCE_URL",
        "CODESUGGEST_INSTANCE_PORTAL_URL",
        "CODESUGGEST_INSTANCE_GATEWAY_URL",
        "CODESUGGEST_PORTAL_URL",
        "CODESUGGEST_GATEWAY_PUBLIC_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    instance = InstanceSettings()
    assert instance.portal_url == PortalSettings().url == ports.local_url(serve_port(portal_cli))
    assert instance.gateway_url == GatewaySettings().public_url
    assert instance.gateway_url == ports.local_url(serve_port(gateway_cli))
    assert instance.url == ports.local_url(serve_port(instance_cli))


def test_the_defaults_are_where_up_puts_the_parts() -> None:
    layout = Layout(Path("unused"), port_base=DEFAULT_PORT_BASE)
    assert layout.url("portal") == ports.local_url(ports.PORTAL)
    assert layout.url("self-managed") == ports.local_url(ports.INSTANCE)
    assert layout.url("gateway") == ports.local_url(ports.GATEWAY)
