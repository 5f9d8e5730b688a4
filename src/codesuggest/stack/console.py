"""What `up` and `status` print for people: progress while starting and one clear summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

NAMES = {
    "portal": "portal (licenses, instance tokens)",
    "self-managed": "instance, self-managed",
    "saas": "instance, SaaS",
    "gateway": "gateway (+ edge routes)",
}


def print_summary(console: Console, body: dict[str, Any], config_written: bool) -> None:
    table = Table(title="codesuggest is running", show_lines=False)
    table.add_column("part")
    table.add_column("url")
    table.add_row(NAMES["portal"], body["portal"]["url"])
    for realm in ("self-managed", "saas"):
        table.add_row(NAMES[realm], body["instances"][realm]["url"])
    table.add_row(NAMES["gateway"], body["gateway"]["url"])
    table.add_row("edge (/ai/..., /auth/...)", body["edge"]["url"])
    console.print(table)
    sm = body["instances"]["self-managed"]
    console.print(f"data directory: {body['data_dir']}")
    if "completions" in body["gateway"]:
        console.print(f"completions: {body['gateway']['completions']}", highlight=False)
    console.print(f"demo user's PAT (self-managed): [bold]{sm['user_pat']}[/bold]", soft_wrap=True)
    console.print(
        f"demo user's PAT (SaaS):         {body['instances']['saas']['user_pat']}",
        soft_wrap=True,
        highlight=False,
    )
    for realm, label in (("self-managed", "self-managed"), ("saas", "SaaS")):
        part = body["instances"][realm]
        console.print(
            f"admin pages ({label}): {part['admin_url']}  sign in as {part['admin_user']} / "
            f"{part['admin_password']}",
            soft_wrap=True,
            highlight=False,
        )
    if config_written:
        console.print("the client config now points at the self-managed instance with that PAT")
    console.print("next:")
    console.print("  codesuggest demo                     # the whole system once, timed")
    console.print("  codesuggest complete FILE:LINE:COL   # one completion")
    console.print("  codesuggest lsp                      # language server for your editor")
    console.print("  codesuggest status | codesuggest down")


def print_status(console: Console, body: dict[str, Any]) -> None:
    table = Table(title=f"codesuggest in {body['data_dir']}")
    for column in ("part", "url", "pid", "ready"):
        table.add_column(column)
    for name, part in body["parts"].items():
        ready = "[green]ready[/green]" if part["ready"] else "[red]not ready[/red]"
        if part["pid"] is None:
            ready = "[dim]stopped[/dim]"
        table.add_row(NAMES[name], part["url"], str(part["pid"] or "-"), ready)
    console.print(table)
