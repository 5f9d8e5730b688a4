"""`codesuggest gateway ...`: serve, and manage the gateway's signing keys."""

from __future__ import annotations

import typer

from codesuggest.common.logs import configure, get_logger
from codesuggest.common.serving import DrainingServer, server_config
from codesuggest.tokens import PrivateKey

log = get_logger("codesuggest.gateway")
app = typer.Typer(help="The AI gateway: token authority and completions.", no_args_is_help=True)
keys_app = typer.Typer(help="The gateway's own signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8183, help="Port to listen on."),
) -> None:
    """Run the gateway (configured by CODESUGGEST_GATEWAY_* environment variables)."""
    from codesuggest.gateway.app import create_app
    from codesuggest.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    configure(settings.log_level)
    gateway = create_app(settings)

    def drain() -> None:
        gateway.state.ctx.draining = True
        log.info("shutting down: not ready", drain_seconds=settings.shutdown_delay)

    DrainingServer(server_config(gateway, host, port), settings.shutdown_delay, drain).run()


@keys_app.command("generate")
def generate() -> None:
    """Print a new RSA-2048 private key (PEM) for CODESUGGEST_GATEWAY_SIGNING_KEY(_FILE)."""
    key = PrivateKey.generate()
    typer.echo(key.to_pem(), nl=False)
    typer.echo(f"# kid: {key.kid}", err=True)
