"""`codesuggest usage report` over a JSONL sink file, and telemetry folding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from codesuggest.cli import app
from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.usage.report import GroupBy, parse_since, summarize

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def requested(user: str, lang: str, path: str, status: str = "served", days_ago: int = 0):
    return UsageEvent(
        name="code_suggestion_requested",
        global_user_id=user,
        language=lang,
        path=path,
        status=status,
        timestamp=NOW - timedelta(days=days_ago),
    )


def counted(name: str, count: int) -> UsageEvent:
    """A client telemetry count for alice (folded by the completions route)."""
    return UsageEvent(
        name=name, count=count, global_user_id="alice", language="python", timestamp=NOW
    )


def write(path, events, repeat_first: int = 0) -> None:
    lines = [e.model_dump_json(exclude_none=True) for e in events]
    lines += lines[:repeat_first]  # at-least-once: some events delivered twice
    path.write_text("\n".join(lines) + "\n" + '{"event_id": "torn', encoding="utf-8")


@pytest.fixture
def usage_file(tmp_path):
    context = requested("alice", "python", "direct")
    events = [
        context,
        requested("alice", "python", "direct", "empty"),
        requested("alice", "go", "monolith", days_ago=1),
        requested("bob", "python", "monolith", "error:TimeoutError", days_ago=3),
        UsageEvent(name="user_token_issued", global_user_id="bob", timestamp=NOW),
        counted("code_suggestion_shown", 4),
        counted("code_suggestion_accepted", 2),
        counted("code_suggestion_rejected", 2),
    ]
    path = tmp_path / "usage.jsonl"
    write(path, events, repeat_first=3)
    return path


def test_summary_by_user_dedupes_and_counts(usage_file):
    from codesuggest.gateway.usage.report import read_jsonl

    rows = {row["key"]: row for row in summarize(read_jsonl(usage_file), GroupBy.user)}
    alice, bob = rows["alice"], rows["bob"]
    assert (alice["requested"], alice["served"], alice["empty"]) == (3, 2, 1)
    assert (alice["direct"], alice["monolith"]) == (2, 1)
    assert (alice["shown"], alice["accepted"], alice["rejected"]) == (4, 2, 2)
    assert (bob["requested"], bob["errors"], bob["monolith"], bob["tokens_issued"]) == (1, 1, 1, 1)
    assert bob["accepted"] == 0


def test_since_filters_by_relative_and_iso_times():
    assert parse_since("1d", NOW) == NOW - timedelta(days=1)
    assert parse_since("12h", NOW) == NOW - timedelta(hours=12)
    assert parse_since("2026-03-09") == datetime(2026, 3, 9, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_since("yesterday")


def test_cli_reports_json_by_day_since(usage_file):
    result = CliRunner().invoke(
        app,
        [
            "usage",
            "report",
            "--source",
            str(usage_file),
            "--by",
            "day",
            "--since",
            "2026-03-09T00:00:00+00:00",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [row["key"] for row in doc["rows"]] == ["2026-03-09", "2026-03-10"]
    assert doc["total"]["requested"] == 3  # bob's request 3 days ago is before --since
    assert doc["total"]["accepted"] == 2


def test_cli_table_by_language_and_missing_file(usage_file, tmp_path):
    result = CliRunner().invoke(
        app,
        ["usage", "report", "--source", str(usage_file), "--by", "language"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "python" in result.output and "go" in result.output and "total" in result.output
    missing = CliRunner().invoke(app, ["usage", "report", "--source", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "no usage file" in missing.output


def test_rows_by_client_carry_the_acceptance_rate(tmp_path):
    events = [
        UsageEvent(name="code_suggestion_requested", client_name="vscode", status="served"),
        UsageEvent(name="code_suggestion_shown", client_name="vscode", count=4),
        UsageEvent(name="code_suggestion_accepted", client_name="vscode", count=1),
        UsageEvent(name="code_suggestion_requested", client_name="nvim", status="served"),
    ]
    path = tmp_path / "usage.jsonl"
    write(path, events)
    from codesuggest.gateway.usage.report import read_jsonl, totals

    rows = {row["key"]: row for row in summarize(read_jsonl(path), GroupBy.client)}
    assert rows["vscode"]["acceptance_rate"] == 0.25
    assert rows["nvim"]["acceptance_rate"] is None  # nothing shown
    assert totals(list(rows.values()))["acceptance_rate"] == 0.25
    table = CliRunner().invoke(
        app, ["usage", "report", "--source", str(path), "--by", "client"], env={"COLUMNS": "220"}
    )
    assert table.exit_code == 0, table.output
    assert "25%" in table.output and "nvim" in table.output


def test_cli_reads_a_data_directory_and_keeps_long_user_ids_on_one_line(tmp_path):
    user = "a" * 20 + "-" + "b" * 23  # as long as a global user id
    (tmp_path / "gateway").mkdir()
    write(tmp_path / "gateway" / "usage.jsonl", [requested(user, "python", "direct")])
    result = CliRunner().invoke(
        app, ["usage", "report", "--data-dir", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert user in result.output


def test_cli_says_so_when_there_is_nothing_to_report(tmp_path):
    empty = tmp_path / "usage.jsonl"
    empty.write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["usage", "report", "--source", str(empty)])
    assert result.exit_code == 0, result.output
    assert f"no usage events in {empty}" in result.output
