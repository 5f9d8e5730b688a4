"""The one `codesuggest` command; each part contributes a sub-command group."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from codesuggest.client import cli as client_cli
from codesuggest.edge.cli import app as edge_app
from codesuggest.gateway.cli import app as gateway_app
from codesuggest.gateway.usage.report import app as usage_app
from codesuggest.instance.cli import app as instance_app
from codesuggest.portal.cli import app as portal_app
from codesuggest.stack import cli as stack_cli

SYNONYMS = {"start": "up", "run": "up", "serve": "up", "stop": "down"}
"""Words people type for the stack's commands; difflib would suggest `status` for `start`."""


def _commands(group: Any) -> Iterator[Any]:
    for command in group.commands.values():
        yield command
        if hasattr(command, "commands"):
            yield from _commands(command)


def _name_placeholders(command: Any) -> None:
    """Help shows a name, not a type (`<str>`), for what a parameter takes: an option without
    an explicit `metavar=` takes its upper-case name (`--log-level LOG_LEVEL`), as argparse
    does; an argument shows its name only."""
    for param in command.params:
        if param.metavar is None and param.name:
            if isinstance(param, TyperOption) and not param.is_flag:
                param.metavar = param.name.upper()
            elif isinstance(param, TyperArgument):
                param.metavar = param.name.upper()
        if isinstance(param, TyperArgument):
            # The help table's type column asks the type for its placeholder: none.
            param.type = copy.copy(param.type)
            param.type.get_metavar = lambda param, ctx: ""  # type: ignore[method-assign]


class Root(TyperGroup):
    """The top-level command: clear placeholders in every command's help, and `start`, `run`,
    `serve`, `stop` pointed at `up` and `down`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in _commands(self):
            _name_placeholders(command)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in SYNONYMS and args[0] not in self.commands:
            ctx.fail(f"No such command {args[0]!r}. Did you mean {SYNONYMS[args[0]]!r}?")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=Root,
    help="codesuggest: AI code completions straight from the gateway to your editor.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(gateway_app, name="gateway")
app.add_typer(usage_app, name="usage")
app.add_typer(portal_app, name="portal")
app.add_typer(instance_app, name="instance")
app.command("complete")(client_cli.complete)
app.command("login")(client_cli.login)
app.command("lsp")(client_cli.lsp)
app.command("up")(stack_cli.up)
app.command("down")(stack_cli.down)
app.command("status")(stack_cli.status)
app.add_typer(edge_app, name="edge")
app.command("demo")(stack_cli.demo)
