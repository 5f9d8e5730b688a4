"""The one `codesuggest` command; each part contributes a sub-command group.

A part's module is imported only when its command runs (or its own help is asked for): the
top-level help and shell completion list each command from `COMMANDS`, so `codesuggest
complete` does not pay for the services' database and web stacks.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

SYNONYMS = {"start": "up", "run": "up", "serve": "up", "stop": "down"}
"""Words people type for the stack's commands; difflib would suggest `status` for `start`."""

COMMANDS = {
    "complete": (
        "codesuggest.client.cli:complete",
        "Ask for a suggestion at FILE:LINE:COL; print it, the path that served it (direct or\n"
        "monolith) and how long each stage took.",
    ),
    "login": (
        "codesuggest.client.cli:login",
        "Check a personal access token against the instance and store both (mode 0600) in the\n"
        "user's config dir, so later commands need no flags.",
    ),
    "lsp": (
        "codesuggest.client.cli:lsp",
        "Run the language server on stdin/stdout (point your editor at `codesuggest lsp`).",
    ),
    "up": (
        "codesuggest.stack.cli:up",
        "Start the portal, two instances and the gateway on loopback (first start provisions).",
    ),
    "down": ("codesuggest.stack.cli:down", "Stop a stack started with `up --detach`."),
    "status": (
        "codesuggest.stack.cli:status",
        "What runs where; exit status 0 only when every part is ready.",
    ),
    "demo": (
        "codesuggest.stack.cli:demo",
        "Walk through the whole system once (provisioning, token sync, direct and monolith\n"
        "completions, usage) against the running stack, starting and afterwards stopping it if\n"
        "nothing runs, and print each numbered step with its timing.",
    ),
    "gateway": ("codesuggest.gateway.cli:app", "The AI gateway: token authority and completions."),
    "usage": ("codesuggest.gateway.usage.report:app", "Usage events recorded by the gateway."),
    "portal": ("codesuggest.portal.cli:app", "Licensing portal: licenses, add-ons, signing keys."),
    "instance": (
        "codesuggest.instance.cli:app",
        "The code-hosting instance: users, PATs, seats, direct access.",
    ),
    "edge": ("codesuggest.edge.cli:app", "The edge (Cloud Connector) in front of the gateway."),
}
"""Each top-level command: where it is defined (a Typer app or a command function) and the
first paragraph of its help, line breaks included (tests/test_cli.py checks it against the
loaded command)."""


def _commands(group: Any) -> Iterator[Any]:
    yield group
    for command in getattr(group, "commands", {}).values():
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


def _load(name: str, target: str) -> Any:
    """Import `target` ("module:attribute") and make it the click command `name`."""
    module, attribute = target.split(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        command: Any = typer.main.get_group(found)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    for each in _commands(command):
        _name_placeholders(each)
    return command


class _Unloaded(TyperCommand):
    """A top-level command whose module is not imported yet: its name and short help."""

    def __init__(self, name: str, target: str, summary: str) -> None:
        super().__init__(name=name, help=summary)
        self.target = target


class Root(TyperGroup):
    """The top-level command: clear placeholders in every command's help, `start`, `run`,
    `serve`, `stop` pointed at `up` and `down`, and each command imported on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (target, summary) in COMMANDS.items():
            self.commands[name] = _Unloaded(name, target, summary)
        self._listing = False

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        """List commands by their summaries, without importing them."""
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Unloaded) and not self._listing:
            command = self.commands[cmd_name] = _load(cmd_name, command.target)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)

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


@app.callback()
def _root() -> None:
    """Every command is added by `Root`, so Typer needs this to build a group."""
