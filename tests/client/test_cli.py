"""`codesuggest login` and `codesuggest complete` against the fake instance and gateway."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from client.contract_fakes import GOOD_PAT
from codesuggest.cli import app
from codesuggest.client.cli import cursor_offset


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "main.py"
    path.write_text("import os\n\ndef add(a, b):\n    return \n")
    return path


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESUGGEST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("CODESUGGEST_TOKEN", raising=False)
    monkeypatch.delenv("CODESUGGEST_INSTANCE_URL", raising=False)
    return CliRunner()


def flat(output: str) -> str:
    """The output as one line: the error box's borders and wrapping removed."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def test_cursor_offset_counts_from_one_up_to_the_end_of_each_line():
    text = "ab\ncde\n"
    assert cursor_offset(text, 1, 1) == 0
    assert cursor_offset(text, 2, 3) == 5
    assert cursor_offset(text, 2, 4) == 6
    assert cursor_offset(text, 3, 1) == len(text)
    with pytest.raises(ValueError, match="column 5 is past the end of line 2"):
        cursor_offset(text, 2, 5)


def test_a_place_past_the_end_of_the_file_is_refused_before_any_request(runner, source):
    result = runner.invoke(app, ["complete", f"{source}:99:1", "--instance", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "line 99 is past the end of the file (5 lines)" in flat(result.output)
    assert "no suggestion" not in result.output


def test_an_instance_without_a_scheme_gets_a_hint(runner, source):
    result = runner.invoke(app, ["login", "--instance", "127.0.0.1:8501", "--token-env", "X"])
    assert result.exit_code == 2
    assert "no scheme: write it with one, e.g. http://127.0.0.1:8501" in flat(result.output)


def test_an_unreachable_instance_suggests_starting_the_stack(runner, source):
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    result = runner.invoke(
        app, ["complete", f"{source}:4:12", "--instance", url, "--token-env", "PAT_FOR_TEST"],
        env={"PAT_FOR_TEST": GOOD_PAT},
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"instance unreachable at {url}" in flat(result.output)
    assert "`codesuggest up` starts it" in flat(result.output)


def test_complete_with_flags_prints_suggestion_path_and_stage_times(stack, runner, source):
    result = runner.invoke(
        app,
        [
            "complete", f"{source}:4:12", "--instance", stack.instance.url,
            "--token-env", "PAT_FOR_TEST", "--json",
        ],
        env={"PAT_FOR_TEST": GOOD_PAT},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["text"], out["path"], out["intent"]) == ("return a + b", "direct", "completion")
    assert out["timings"]["details_fetched"] is True
    assert out["timings"]["details_ms"] > 0 and out["timings"]["direct_ms"] > 0
    assert out["timings"]["server_timing_ms"] == {"model": 1.5, "total": 2.25}
    sent = stack.world.gateway_requests[0]["body"]["current_file"]
    assert sent["content_above_cursor"] == "import os\n\ndef add(a, b):\n    return "


def test_login_stores_config_then_complete_needs_no_flags(stack, runner, source, tmp_path):
    login = runner.invoke(
        app, ["login", "--instance", stack.instance.url, "--token-env", "PAT_FOR_TEST"],
        env={"PAT_FOR_TEST": GOOD_PAT},
    )  # fmt: skip
    assert login.exit_code == 0, login.output
    assert "as alice" in login.stdout
    stored = tmp_path / "config" / "client.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["token"] == GOOD_PAT
    result = runner.invoke(app, ["complete", f"{source}:4:12"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "return a + b"
    assert "path: direct" in result.stderr


def test_login_refuses_a_bad_token_and_stores_nothing(stack, runner, tmp_path):
    result = runner.invoke(
        app, ["login", "--instance", stack.instance.url, "--token-env", "PAT_FOR_TEST"],
        env={"PAT_FOR_TEST": "glpat-wrong"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "refused the token: HTTP 401" in result.stderr
    assert not (tmp_path / "config" / "client.json").exists()


def test_complete_without_configuration_says_how_to_fix(runner, source):
    result = runner.invoke(app, ["complete", f"{source}:4:12"])
    assert result.exit_code == 2
    assert "codesuggest login" in result.stderr


def test_complete_generation_goes_through_monolith(stack, runner, tmp_path):
    path = tmp_path / "gen.py"
    path.write_text("# write a function that parses a csv line\n\n")
    result = runner.invoke(
        app, ["complete", f"{path}:2:1", "--instance", stack.instance.url, "--json"],
        env={"CODESUGGEST_TOKEN": GOOD_PAT},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == "monolith"
    assert stack.world.direct_access_calls == []
