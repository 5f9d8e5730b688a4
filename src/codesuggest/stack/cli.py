"""`codesuggest up | down | status | demo`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from codesuggest.common.logs import configure
from codesuggest.stack import runner
from codesuggest.stack.console import NAMES, print_status, print_summary
from codesuggest.stack.demo import Demo, StepFailed
from codesuggest.stack.layout import PORT_BASE_ENV, Layout, StackError, default_data_dir

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Data directory (default: the user data dir/codesuggest, "
        "~/.local/share/codesuggest on Linux).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
MAX_PORT_BASE = 65535 - 3  # the base and the three ports after it


def _port_base(help: str) -> Any:
    return typer.Option(
        "--port-base", metavar="PORT", envvar=PORT_BASE_ENV, min=1, max=MAX_PORT_BASE, help=help
    )


UpPortBase = Annotated[
    int | None,
    _port_base(
        "First of four ports: portal, self-managed instance, SaaS instance, gateway "
        "(default 8180, or what this data directory used last)."
    ),
]
DemoPortBase = Annotated[int | None, _port_base("As for `up`, when the demo starts the stack.")]


def _fail(exc: StackError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(1)


def _progress(console: Console):  # type: ignore[no-untyped-def]
    def show(part: str, event: str) -> None:
        console.print(f"  {NAMES.get(part, part)}: {event}", highlight=False)

    return show


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def up(
    data_dir: DataDir = None,
    port_base: UpPortBase = None,
    detach: Annotated[bool, typer.Option("--detach", help="Leave it running and return.")] = False,
    as_json: AsJson = False,
) -> None:
    """Start the portal, two instances and the gateway on loopback (first start provisions)."""
    configure("WARNING")
    stack = runner.Stack(data_dir or default_data_dir(), port_base)
    progress = _progress(err if as_json else out)
    try:
        body = stack.up(progress)
    except StackError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print("interrupted: stopped what had started")
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(body))
    else:
        print_summary(out, body, stack.config_written)
    if detach:
        stack.detach()
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    out.print("Ctrl-C stops everything.")
    try:
        _watch(stack)
    except KeyboardInterrupt:
        out.print("stopping...")
    finally:
        stack.down()
    out.print("stopped")


def _watch(stack: runner.Stack) -> None:
    """Foreground: return (and so stop everything) when a part dies on its own."""
    assert stack.supervisor is not None
    while True:
        dead = stack.supervisor.dead_parts()
        if dead:
            part = dead[0]
            err.print(f"[red]{part.failure('it exited while running')}[/red]", highlight=False)
            raise typer.Exit(1)
        time.sleep(0.5)


def down(data_dir: DataDir = None) -> None:
    """Stop a stack started with `up --detach`."""
    try:
        stopped = runner.down(data_dir or default_data_dir())
    except StackError as exc:
        raise _fail(exc) from None
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """What runs where; exit status 0 only when every part is ready."""
    try:
        body = runner.status(data_dir or default_data_dir())
    except StackError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(body))
    else:
        print_status(out, body)
    if not body["running"]:
        raise typer.Exit(3)


def demo(
    data_dir: DataDir = None,
    port_base: DemoPortBase = None,
    rounds: Annotated[int, typer.Option(metavar="N", help="Completion rounds per path.")] = 10,
) -> None:
    """Walk through the whole system once (provisioning, token sync, direct and monolith
    completions, usage) against the running stack, starting and afterwards stopping it if
    nothing runs, and print each numbered step with its timing."""
    configure("WARNING")
    directory = (data_dir or default_data_dir()).expanduser().resolve()
    started: runner.Stack | None = None
    try:
        if runner.running_pids(directory):
            body = runner.status(directory)
            if not body["running"]:
                raise StackError(f"the stack in {directory} is not ready: see `codesuggest status`")
            layout = Layout(directory, int(body["portal"]["url"].rsplit(":", 1)[1]))
            state = runner.load_state(directory)
            out.print(f"using the running system in {directory}")
        else:
            out.print(f"starting the system in {directory} (stopped again at the end)")
            started = runner.Stack(directory, port_base)
            started.up(_progress(out))
            layout, state = started.layout, started.state
        Demo(layout, state, out, rounds=rounds).run()
    except (StackError, StepFailed) as exc:
        err.print(f"[red]demo failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        if started is not None:
            started.down()
    out.print("[green]demo complete[/green]: every step succeeded")
