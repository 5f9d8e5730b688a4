"""The top-level `codesuggest` command: every command's help, and the words people guess."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from codesuggest.cli import COMMANDS, Root, app
from codesuggest.stack.parts import gateway_completions

PLACEHOLDER = re.compile(r"<[a-z][a-z |\[\]]*>")
"""A type shown where a name belongs: `<bool>`, `<str>`, `<int range>`, `<path>`, `<a|b>`."""


def command_paths(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if hasattr(group, "list_commands"):
        ctx = typer.core._click.Context(group)  # the click Typer bundles
        for name in group.list_commands(ctx):
            yield from command_paths(group.get_command(ctx, name), (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_walked():
    expected = {("up",), ("complete",), ("instance", "users", "create"), ("edge", "nginx-config")}
    assert expected <= set(PATHS)
    assert len(PATHS) > 40


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "codesuggest")
def test_help_names_what_each_option_takes_and_flags_take_nothing(path):
    text = help_of(*path)
    assert "Usage:" in text
    assert not PLACEHOLDER.findall(text), text
    flags = [line for line in text.splitlines() if re.match(r"│\s+--(help|json|detach)\b", line)]
    assert flags
    for line in flags:  # a flag takes no value: its help follows its name
        assert re.match(r"│\s+--(help|json|detach)\s{2,}[A-Z]", line), line


def test_the_stack_commands_name_their_values():
    up = help_of("up")
    assert re.search(r"--data-dir\s+DIR\s", up)
    assert re.search(r"--port-base\s+PORT\s", up)
    assert "CODESUGGEST_PORT_BASE" in up
    complete = help_of("complete")
    assert re.search(r"--instance\s+URL\s", complete)
    assert re.search(r"--token-env\s+VAR\s", complete)
    assert re.search(r"\*\s+FILE:LINE:COL\s+\[required\]", complete)
    assert re.search(r"--log-level\s+LOG_LEVEL\s", help_of("portal", "serve"))


def test_the_top_level_help_lists_each_command_as_its_own_help_does(monkeypatch):
    listed = help_of()
    monkeypatch.setattr(Root, "_summaries", contextlib.nullcontext)  # import each command
    assert help_of() == listed
    assert all(name in listed for name in COMMANDS)


HEAVY = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "argon2", "codesuggest.instance")


@pytest.mark.parametrize(
    "script",
    [
        "from codesuggest.cli import app\ntry:\n    app(['--help'], prog_name='codesuggest')\n"
        "except SystemExit:\n    pass",
        "import typer\nfrom codesuggest.cli import app\nroot = typer.main.get_command(app)\n"
        "assert root.get_command(typer.core._click.Context(root), 'complete').params",
    ],
    ids=["help", "complete"],
)
def test_the_top_level_command_imports_no_part_it_does_not_run(script):
    """Every `codesuggest` process (editor commands, each part `up` starts) pays for what the
    top-level command imports: the services' database and web stacks load only when used."""
    check = f"{script}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith({HEAVY})))"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


@pytest.mark.parametrize(
    ("typed", "meant"), [("start", "up"), ("run", "up"), ("serve", "up"), ("stop", "down")]
)
def test_a_synonym_of_up_or_down_is_answered_with_it(typed, meant):
    result = CliRunner().invoke(app, [typed], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert f"No such command '{typed}'. Did you mean '{meant}'?" in result.output


def test_other_typos_still_get_close_matches():
    result = CliRunner().invoke(app, ["stat"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Did you mean 'status'?" in result.output


def test_a_part_keeps_its_own_serve():
    result = CliRunner().invoke(app, ["gateway", "serve", "--help"])
    assert result.exit_code == 0 and "Did you mean" not in result.output


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({}, "embedded engine (built in, offline)"),
        (
            {
                "PROVIDER": "openai",
                "OPENAI_API": "ollama",
                "OPENAI_BASE_URL": "http://user:secret@127.0.0.1:11434/?key=sk-x",
                "OPENAI_MODEL": "qwen2.5-coder:1.5b-base",
                "OPENAI_EXTRA_MODELS": '["starcoder2"]',
                "OPENAI_API_KEY": "sk-never-shown",
            },
            "openai at http://127.0.0.1:11434 (ollama API), model qwen2.5-coder:1.5b-base",
        ),
        (
            {"PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_MODEL": "claude"},
            "anthropic at https://api.anthropic.com, model claude",
        ),
        ({"PROVIDER": "local", "LOCAL_MODEL_PATH": "/models/a.gguf"}, "local GGUF /models/a.gguf"),
    ],
)
def test_up_names_the_completion_provider_the_gateway_runs_with(settings, said):
    env = {f"CODESUGGEST_GATEWAY_COMPLETIONS__{k}": v for k, v in settings.items()}
    env["CODESUGGEST_PORTAL_URL"] = "http://127.0.0.1:1"  # another part's: not the gateway's
    assert gateway_completions(env).describe() == said
