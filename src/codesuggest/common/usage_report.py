"""The columns of a usage report: what `codesuggest usage report` prints and what the
instance's `GET /api/v4/usage/report` answers, so both sides name them alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

REPORT_COLUMNS = (
    "requested",
    "served",
    "empty",
    "errors",
    "direct",
    "monolith",
    "shown",
    "accepted",
    "rejected",
    "tokens_issued",
)
GROUPS = ("user", "day", "language", "client")
"""What rows can be grouped by; `client` is the User-Agent the gateway and the instance saw
(the GitLab Language Server's names its version and the editor)."""


def acceptance_rate(row: Mapping[str, Any]) -> float | None:
    """Accepted over shown suggestions, or None when nothing was shown."""
    shown = int(row["shown"])
    return round(int(row["accepted"]) / shown, 4) if shown else None


def with_rate(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"acceptance_rate": acceptance_rate(row)}


def merge(*sources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of several sources joined by key (counts summed), sorted by key, with the rate."""
    rows: dict[str, dict[str, Any]] = {}
    for source in sources:
        for row in source:
            into = rows.setdefault(row["key"], dict.fromkeys(REPORT_COLUMNS, 0))
            for column in REPORT_COLUMNS:
                into[column] += int(row[column])
    return [with_rate({"key": key, **rows[key]}) for key in sorted(rows)]
