"""`codesuggest gateway ...`: serve, and manage the gateway's signing keys."""

from __future__ import annotations

import os

import typer

from codesuggest.common import ports
from codesuggest.common.data_dir import make_private
from codesuggest.common.logs import configure
from codesuggest.gateway.workers import available_cores, serve_one, serve_workers
from codesuggest.tokens import PrivateKey

PUBLIC_URL_ENV = "CODESUGGEST_GATEWAY_PUBLIC_URL"

app = typer.Typer(help="The AI gateway: token authority and completions.", no_args_is_help=True)
keys_app = typer.Typer(help="The gateway's own signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(ports.GATEWAY, help="Port to listen on."),
    workers: int = typer.Option(
        0,
        min=0,
        help="Worker processes on the one address (0: one per available core). Usage events, "
        "metrics and the signing key are shared by all of them.",
    ),
) -> None:
    """Run the gateway (configured by CODESUGGEST_GATEWAY_* environment variables; without
    CODESUGGEST_GATEWAY_PUBLIC_URL its URL is the address it listens on)."""
    from codesuggest.gateway.settings import GatewaySettings

    # Through the environment, which the worker processes inherit.
    os.environ.setdefault(PUBLIC_URL_ENV, ports.local_url(port, host))
    settings = GatewaySettings()
    configure(settings.log_level)
    make_private(settings.data_dir)
    workers = workers or available_cores()
    if workers > 1:
        serve_workers(host, port, workers)
    else:
        serve_one(settings, host, port)


@keys_app.command("generate")
def generate() -> None:
    """Print a new RSA-2048 private key (PEM) for CODESUGGEST_GATEWAY_SIGNING_KEY(_FILE)."""
    key = PrivateKey.generate()
    typer.echo(key.to_pem(), nl=False)
    typer.echo(f"# kid: {key.kid}", err=True)
