"""`codesuggest edge ...`: the production edge's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codesuggest.edge.nginx import EdgeConfigError, NginxOptions, render

app = typer.Typer(help="The edge (Cloud Connector) in front of the gateway.", no_args_is_help=True)


@app.command("nginx-config")
def nginx_config(
    gateway: Annotated[
        list[str], typer.Option("--gateway", help="Gateway origin, e.g. http://10.0.0.5:8183.")
    ],
    listen: Annotated[str, typer.Option(help="nginx `listen` value: port or addr:port.")] = "8080",
    rate: Annotated[
        str, typer.Option(help="Requests per user (X-Gitlab-Global-User-Id), e.g. 50r/s.")
    ] = "50r/s",
    burst: Annotated[int, typer.Option(help="Requests over the rate let through at once.")] = 100,
    mint_rate: Annotated[
        str,
        typer.Option(help="Token mints per instance (X-Gitlab-Instance-Id), e.g. 100r/s."),
    ] = "100r/s",
    mint_burst: Annotated[
        int, typer.Option(help="Mints over the mint rate let through at once.")
    ] = 1000,
    max_body: Annotated[str, typer.Option(help="Largest request body, e.g. 1m.")] = "1m",
    runtime_dir: Annotated[
        str | None,
        typer.Option(help="Put pid file, logs and temp files here (unprivileged nginx)."),
    ] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Add `daemon off;` (containers, supervisors).")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Render a complete nginx.conf with the edge routes in front of the gateway(s)."""
    options = NginxOptions(
        gateways=gateway,
        listen=listen,
        rate=rate,
        burst=burst,
        mint_rate=mint_rate,
        mint_burst=mint_burst,
        max_body=max_body,
        runtime_dir=runtime_dir,
        foreground=foreground,
    )
    try:
        text = render(options)
    except EdgeConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
