"""`codesuggest usage report`: usage per user, day, language or client, read from the JSONL
sink (deduplicated by `event_id`), from an instance's `GET /api/v4/usage/report`, or both
joined: the gateway's events of that instance from the sink with what IDEs reported to it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from codesuggest.common.usage import REPORT, REPORT_COLUMNS, acceptance_rate, merge

app = typer.Typer(help="Usage events recorded by the gateway.", no_args_is_help=True)

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class GroupBy(StrEnum):
    user = "user"
    day = "day"
    language = "language"
    client = "client"


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """`1d`, `12h`, `30m`, `2w` back from now, or an ISO-8601 date/time (UTC if naive)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"--since {value!r} is neither ISO-8601 nor like 1d/12h/30m") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Events from a JSONL sink file; a torn last line (crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("event_id"):
                yield event


def dedupe(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """At-least-once delivery may repeat an event: keep the first of each `event_id`."""
    seen: set[str] = set()
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            yield event


def _timestamp(event: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def group_key(event: dict[str, Any], by: GroupBy) -> str:
    if by is GroupBy.user:
        return str(event.get("global_user_id") or "-")
    if by is GroupBy.language:
        return str(event.get("language") or "-")
    if by is GroupBy.client:
        return str(event.get("client_name") or "-")
    when = _timestamp(event)
    return when.astimezone(UTC).date().isoformat() if when else "-"


def summarize(
    events: Iterable[dict[str, Any]],
    by: GroupBy,
    since: datetime | None = None,
    instance_id: str | None = None,
) -> list[dict[str, Any]]:
    """One row per group, each column counted by the rules of `common.usage.REPORT` (the
    instance's report sums its stored events by the same rules); with `instance_id`, only
    that instance's events."""
    rows: dict[str, dict[str, Any]] = {}
    for event in dedupe(events):
        if instance_id is not None and event.get("instance_id") != instance_id:
            continue
        if since is not None:
            when = _timestamp(event)
            if when is None or when < since:
                continue
        row = rows.setdefault(group_key(event, by), dict.fromkeys(REPORT_COLUMNS, 0))
        for name, column in REPORT.items():
            row[name] += column.value(event)
    return merge({"key": key, **rows[key]} for key in rows)


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summed = {column: sum(row[column] for row in rows) for column in REPORT_COLUMNS}
    return summed | {"acceptance_rate": acceptance_rate(summed)}


def fetch_instance_report(
    url: str,
    token: str,
    by: GroupBy,
    since: datetime | None,
    source: str = "all",
    instance_id: str | None = None,
) -> dict[str, Any]:
    """The instance's report, `{"instance_id", "rows", ...}`: of its own events, or of those of
    `instance_id` (`all`: every instance's); `source="ide"` for only what IDEs reported."""
    params = {"by": by.value, "source": source}
    if since is not None:
        params["since"] = since.isoformat()
    if instance_id is not None:
        params["instance_id"] = instance_id
    response = httpx.get(
        url.rstrip("/") + "/api/v4/usage/report",
        params=params,
        headers={"PRIVATE-TOKEN": token},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"instance answered {response.status_code}: {response.text[:300]}")
    report: dict[str, Any] = response.json()
    return report


def default_source() -> Path:
    """The one-machine stack's JSONL sink, from the gateway's settings."""
    from codesuggest.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    usage = getattr(settings, "usage", None)
    configured = getattr(usage, "jsonl_path", None)
    return Path(configured) if configured else settings.data_dir / "usage.jsonl"


def in_data_dir(data_dir: Path) -> Path:
    """The JSONL sink in a data directory: `codesuggest up`'s (its gateway's part) or a
    gateway's own."""
    stack_gateway = data_dir / "gateway" / "usage.jsonl"
    return stack_gateway if stack_gateway.exists() else data_dir / "usage.jsonl"


def _render(rows: list[dict[str, Any]], by: GroupBy, console: Console, where: str) -> None:
    if not rows:
        console.print(f"no usage events{where}", highlight=False, soft_wrap=True)
        return
    table = Table(title=f"usage by {by.value}")
    # Keys (a global user id is 44 characters) stay on one line; the counts' headers wrap.
    table.add_column(by.value, no_wrap=True)
    for column in REPORT_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("acceptance", justify="right")

    def cells(row: dict[str, Any]) -> list[str]:
        rate = row["acceptance_rate"]
        return [str(row[c]) for c in REPORT_COLUMNS] + ["-" if rate is None else f"{rate:.0%}"]

    for row in rows:
        table.add_row(row["key"], *cells(row))
    if rows:
        table.add_section()
        table.add_row("total", *cells(totals(rows)))
    console.print(table)


@app.command()
def report(
    since: str = typer.Option(None, help="ISO-8601 date/time, or 30m / 12h / 1d / 2w back."),
    by: GroupBy = typer.Option(GroupBy.user, help="Group rows by user, day, language or client."),
    source: Path = typer.Option(None, help="JSONL sink file (default: the gateway's usage.jsonl)."),
    data_dir: Path = typer.Option(
        None,
        help="Read the usage.jsonl of this data directory (`codesuggest up`'s or a gateway's).",
    ),
    instance: str = typer.Option(
        None,
        help="Instance URL: that instance's usage, from its usage_events; with --source or "
        "--collector, what IDEs reported to it joined with its gateway events from there.",
    ),
    token: str = typer.Option(
        None, envvar="CODESUGGEST_USAGE_TOKEN", help="Admin PAT for --instance."
    ),
    collector: str = typer.Option(
        None, help="Instance URL the gateway ships usage to: read the gateway's events there."
    ),
    collector_token: str = typer.Option(
        None, envvar="CODESUGGEST_USAGE_COLLECTOR_TOKEN", help="Admin PAT for --collector."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Summarize usage: requests (served/empty/errors, direct/monolith), suggestions shown,
    accepted and rejected with the acceptance rate, and tokens issued, per user, day, language
    or client (the User-Agent: editor and language-server version)."""
    try:
        since_at = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    if instance and not token:
        raise typer.BadParameter("--instance needs --token (an admin PAT)")
    if collector and not collector_token:
        raise typer.BadParameter("--collector needs --collector-token (an admin PAT there)")
    if source and collector:
        raise typer.BadParameter("use either --source or --collector", param_hint="--source")
    if data_dir is not None:
        if source:
            raise typer.BadParameter("use either --source or --data-dir", param_hint="--source")
        source = in_data_dir(data_dir)
    rows: list[dict[str, Any]] = []
    reported: dict[str, Any] = {"instance_id": None, "rows": []}
    try:
        if instance:
            # Joined with the gateway's events from elsewhere: only what IDEs reported here.
            wanted = "ide" if source or collector else "all"
            reported = fetch_instance_report(instance, token, by, since_at, wanted)
        # The gateway's events are those of every instance it serves: with --instance, its own.
        own = reported["instance_id"]
        if collector:
            rows = fetch_instance_report(
                collector, collector_token, by, since_at, "gateway", own or "all"
            )["rows"]
        elif source or not instance:
            path = source or default_source()
            if not path.exists():
                typer.echo(f"error: no usage file at {path}", err=True)
                raise typer.Exit(1)
            rows = summarize(read_jsonl(path), by, since_at, own)
        rows = merge(rows, reported["rows"])
    except (httpx.HTTPError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        document = {
            "by": by.value,
            "since": since_at.isoformat() if since_at else None,
            "instance_id": own,
            "rows": rows,
            "total": totals(rows),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        since_text = f" since {since_at.isoformat()}" if since_at else ""
        where = " and ".join(
            str(place) for place in (collector or source, instance) if place is not None
        )
        whose = f" of instance {own}" if own else ""
        _render(rows, by, Console(), f"{whose}{since_text} in {where or default_source()}")
