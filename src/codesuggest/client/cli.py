"""`codesuggest complete`, `codesuggest login` and `codesuggest lsp` (top-level commands)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import httpx
import typer

from codesuggest.client import config, settings
from codesuggest.client.service import (
    CompletionFailed,
    CompletionInput,
    Suggestion,
    SuggestionClient,
)
from codesuggest.common.model_server import MODEL_UNREACHABLE

app = typer.Typer(help="The IDE client: completions from the command line, login, LSP.")

InstanceOption = Annotated[
    str | None,
    typer.Option(
        "--instance",
        metavar="URL",
        help="Instance URL (default: env or `codesuggest login`).",
    ),
]
TokenEnvOption = Annotated[
    str | None,
    typer.Option(
        "--token-env",
        metavar="VAR",
        help="Read the personal access token from this env var.",
    ),
]


START_HINT = "Is the stack running? `codesuggest up` starts it on this machine."
MODEL_HINT = (
    "The gateway cannot reach its model server: check that the server runs and the gateway's "
    "model settings (CODESUGGEST_GATEWAY_COMPLETIONS__*, docs/models.md). The gateway's log "
    "names the provider and its URL (after `codesuggest up`: logs/gateway.log in the data "
    "directory)."
)


def _err(message: str) -> None:
    typer.echo(message, err=True)


def split_location(location: str) -> tuple[Path, int, int]:
    """`FILE:LINE:COL`, line and column counted from 1 (as compilers and grep print them)."""
    try:
        file_part, line_part, col_part = location.rsplit(":", 2)
        line, col = int(line_part), int(col_part)
    except ValueError as exc:
        raise typer.BadParameter("expected FILE:LINE:COL, e.g. app/main.py:12:5") from exc
    if line < 1 or col < 1:
        raise typer.BadParameter("LINE and COL count from 1")
    return Path(file_part), line, col


def cursor_offset(text: str, line: int, col: int) -> int:
    """Character offset of (line, col); ValueError, saying where the text ends, for a place
    past the end of the file or of its line (COL may be one past the last character)."""
    lines = text.split("\n")
    if line > len(lines):
        raise ValueError(f"line {line} is past the end of the file ({len(lines)} lines)")
    length = len(lines[line - 1])
    if col > length + 1:
        raise ValueError(f"column {col} is past the end of line {line} ({length} characters)")
    return sum(len(current) + 1 for current in lines[: line - 1]) + col - 1


def instance_url(url: str) -> str:
    """An instance URL with its scheme: `127.0.0.1:8501` would be taken as a scheme."""
    if "://" not in url:
        raise typer.BadParameter(
            f"{url!r} has no scheme: write it with one, e.g. http://{url}", param_hint="--instance"
        )
    return url.rstrip("/")


@app.command("complete")
def complete(
    location: Annotated[str, typer.Argument(metavar="FILE:LINE:COL")],
    instance: InstanceOption = None,
    token_env: TokenEnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ask for a suggestion at FILE:LINE:COL; print it, the path that served it (direct or
    monolith) and how long each stage took."""
    path, line, col = split_location(location)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    try:
        offset = cursor_offset(text, line, col)
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="FILE:LINE:COL") from exc
    url, token = settings.resolve(instance_url(instance) if instance else None, None, token_env)
    if not url or not token:
        _err("No instance URL or token: run `codesuggest login` or pass --instance/--token-env.")
        raise typer.Exit(2)
    request = CompletionInput(
        file_name=str(path), content_above_cursor=text[:offset], content_below_cursor=text[offset:]
    )
    try:
        suggestion = asyncio.run(_complete_once(url, token, request, quiet=as_json))
    except CompletionFailed as exc:
        _err(f"No suggestion ({exc.state}): {exc.message}")
        if MODEL_UNREACHABLE in exc.message:
            _err(MODEL_HINT)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(asdict(suggestion), indent=2))
        return
    typer.echo(suggestion.text if suggestion.text is not None else "(no suggestion)")
    t = suggestion.timings
    request_ms = t.get("direct_ms", t.get("monolith_ms", 0.0))
    server = ", ".join(f"{k}={v:g}ms" for k, v in t.get("server_timing_ms", {}).items())
    fetched = " (fetched)" if t.get("details_fetched") else ""
    _err(
        f"path: {suggestion.path}  intent: {suggestion.intent}  "
        f"model: {suggestion.model_engine}/{suggestion.model_name}\n"
        f"details: {t.get('details_ms', 0.0):.1f} ms{fetched}  request: {request_ms:.1f} ms  "
        f"server: {server or '-'}  total: {t.get('total_ms', 0.0):.1f} ms"
    )


async def _complete_once(url: str, token: str, request: CompletionInput, quiet: bool) -> Suggestion:
    def report(state: str, message: str) -> None:
        if not quiet and state != "direct":
            _err(f"[{state}] {message}")

    client = SuggestionClient(url, token, on_status=report)
    try:
        return await client.complete(request)
    finally:
        await client.aclose()


@app.command("login")
def login(
    instance: InstanceOption = None,
    token_env: TokenEnvOption = None,
) -> None:
    """Check a personal access token against the instance and store both (mode 0600) in the
    user's config dir, so later commands need no flags."""
    stored = config.load()
    url = instance or (stored.instance_url if stored else None)
    if not url:
        url = typer.prompt("Instance URL")
    url = instance_url(url)
    if token_env:
        token = os.environ.get(token_env, "")
        if not token:
            _err(f"Environment variable {token_env} is empty or not set.")
            raise typer.Exit(2)
    else:
        token = typer.prompt("Personal access token", hide_input=True)
    try:
        response = httpx.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": token}, timeout=10)
    except httpx.HTTPError as exc:
        _err(f"Cannot reach {url}: {type(exc).__name__}. {START_HINT}")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        _err(f"{url} refused the token: HTTP {response.status_code}")
        raise typer.Exit(1)
    user = response.json()
    path = config.save(url, token)
    typer.echo(f"Logged in to {url} as {user.get('username', user.get('id', '?'))}; saved {path}")


@app.command("lsp")
def lsp() -> None:
    """Run the language server on stdin/stdout (point your editor at `codesuggest lsp`)."""
    from codesuggest.client.lsp import main

    main()
