"""Render the production edge: an nginx configuration with the edge's routes in front of N
gateway replicas (upstream keep-alive, unbuffered streaming, body limit, retries on the next
replica, rate limits per user for completions and per instance for token mints)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from urllib.parse import urlsplit

_RATE = re.compile(r"^\d+r/[sm]$")
_SIZE = re.compile(r"^\d+[kKmMgG]?$")


class EdgeConfigError(ValueError):
    """A bad option; the message names it."""


@dataclass(frozen=True)
class NginxOptions:
    gateways: list[str]
    listen: str = "8080"
    rate: str = "50r/s"
    """Per user (`X-Gitlab-Global-User-Id`; the client address when absent)."""
    burst: int = 100
    mint_rate: str = "100r/s"
    """Token mints per instance (`X-Gitlab-Instance-Id`): one instance mints for all its users."""
    mint_burst: int = 1000
    max_body: str = "1m"
    runtime_dir: str | None = None
    """Directory for the pid file, logs and temp files (for running nginx unprivileged or in a
    test); default: the distribution's locations, logs to stderr/stdout."""
    foreground: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def upstream_server(url: str) -> str:
    """`http://10.0.0.5:8183` -> `10.0.0.5:8183`; only plain HTTP origins without a path."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise EdgeConfigError(
            f"--gateway {url!r}: give an http://host:port origin (TLS to the gateway is "
            "terminated by the platform in front of it)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 80}"


def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line + "\n" if line else "\n" for line in text.splitlines())


def render(options: NginxOptions) -> str:
    if not options.gateways:
        raise EdgeConfigError("at least one --gateway is required")
    if not _RATE.match(options.rate):
        raise EdgeConfigError(f"--rate {options.rate!r}: use e.g. 50r/s or 600r/m")
    if not _RATE.match(options.mint_rate):
        raise EdgeConfigError(f"--mint-rate {options.mint_rate!r}: use e.g. 100r/s or 6000r/m")
    if not _SIZE.match(options.max_body):
        raise EdgeConfigError(f"--max-body {options.max_body!r}: use e.g. 1m or 512k")
    if options.burst < 0 or options.mint_burst < 0:
        raise EdgeConfigError("--burst and --mint-burst must be 0 or more")
    servers = "".join(
        f"        server {upstream_server(url)} max_fails=2 fail_timeout=5s;\n"
        for url in options.gateways
    ).rstrip("\n")
    runtime = options.runtime_dir.rstrip("/") if options.runtime_dir else None
    temp_paths = ""
    if runtime:
        temp_paths = "".join(
            f"    {kind}_temp_path {runtime}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
    # Every replica once, at most 3 tries (a request is not bounced around a large fleet).
    tries = min(len(options.gateways), 3)
    params = _template("proxy_params.tmpl")
    proxy_params = _indent(
        params.substitute(
            request_buffering="off",
            next_upstream="proxy_next_upstream error timeout http_502 http_503;",
            tries=tries,
        ),
        12,
    )
    # POSTs move to the next replica too; the body is buffered (in memory, up to
    # client_max_body_size) so that it can be sent again.
    retry_params = _indent(
        params.substitute(
            request_buffering="on",
            next_upstream="proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
            tries=tries,
        ),
        12,
    )
    return _template("nginx.conf.tmpl").substitute(
        daemon="daemon off;\n" if options.foreground else "",
        pid_file=f"{runtime}/nginx.pid" if runtime else "/run/nginx.pid",
        error_log=f"{runtime}/error.log" if runtime else "stderr",
        access_log=f"{runtime}/access.log" if runtime else "/dev/stdout",
        temp_paths=temp_paths,
        rate=options.rate,
        burst=options.burst,
        mint_rate=options.mint_rate,
        mint_burst=options.mint_burst,
        max_body=options.max_body,
        servers=servers,
        listen=options.listen,
        proxy_params=proxy_params,
        retry_params=retry_params,
    )
