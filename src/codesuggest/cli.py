"""The one `codesuggest` command; each part contributes a sub-command group."""

import typer

from codesuggest.client import cli as client_cli
from codesuggest.edge.cli import app as edge_app
from codesuggest.gateway.cli import app as gateway_app
from codesuggest.gateway.usage.report import app as usage_app
from codesuggest.instance.cli import app as instance_app
from codesuggest.portal.cli import app as portal_app
from codesuggest.stack import cli as stack_cli

app = typer.Typer(
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
