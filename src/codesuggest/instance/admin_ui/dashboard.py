"""What the usage dashboard shows, read from the `usage_events` the gateway ships to this
instance (only this instance's events: `instance_id` = its UUID).

Completions per day by path, shown/accepted/rejected and the acceptance rate per language and
per client, p50/p95 latency per day of answered completions, and seat utilization (seats
purchased, assigned, and assigned users who asked for a completion in the window).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from codesuggest.instance import admin, seats
from codesuggest.instance.identity import global_user_id
from codesuggest.instance.models import usage_events
from codesuggest.instance.store import application_settings

REQUESTED = "code_suggestion_requested"
ANSWERED = ("served", "empty")
"""Requests the model answered (with or without a suggestion): their latency is charted."""
FEEDBACK = {
    "code_suggestion_shown": "shown",
    "code_suggestion_accepted": "accepted",
    "code_suggestion_rejected": "rejected",
}


@dataclass
class Feedback:
    key: str
    shown: int = 0
    accepted: int = 0
    rejected: int = 0

    @property
    def rate(self) -> float | None:
        """Accepted per shown suggestion; None before anything was shown."""
        return self.accepted / self.shown if self.shown else None


@dataclass
class DayPaths:
    day: str
    direct: int = 0
    monolith: int = 0


@dataclass
class DayLatency:
    day: str
    p50: float
    p95: float
    samples: int


@dataclass
class UserUsage:
    username: str
    seat: bool
    completions: int
    last_day: str | None


@dataclass
class Dashboard:
    since: str
    days: int
    paths: list[DayPaths] = field(default_factory=list)
    languages: list[Feedback] = field(default_factory=list)
    clients: list[Feedback] = field(default_factory=list)
    latency: list[DayLatency] = field(default_factory=list)
    seats_purchased: int = 0
    seats_assigned: int = 0
    seats_active: int = 0
    users: list[UserUsage] = field(default_factory=list)

    @property
    def completions(self) -> int:
        return sum(day.direct + day.monolith for day in self.paths)

    @property
    def direct_share(self) -> float | None:
        total = self.completions
        return sum(day.direct for day in self.paths) / total if total else None

    def chart_data(self) -> dict[str, Any]:
        """The numbers the page's charts draw (the same ones its tables list)."""

        def feedback(rows: list[Feedback]) -> dict[str, Any]:
            return {
                "keys": [row.key for row in rows],
                "shown": [row.shown for row in rows],
                "accepted": [row.accepted for row in rows],
                "rejected": [row.rejected for row in rows],
                "rate": [None if row.rate is None else round(row.rate * 100, 1) for row in rows],
            }

        return {
            "paths": {
                "days": [row.day for row in self.paths],
                "direct": [row.direct for row in self.paths],
                "monolith": [row.monolith for row in self.paths],
            },
            "languages": feedback(self.languages),
            "clients": feedback(self.clients),
            "latency": {
                "days": [row.day for row in self.latency],
                "p50": [row.p50 for row in self.latency],
                "p95": [row.p95 for row in self.latency],
            },
            "seats": {
                "purchased": self.seats_purchased,
                "assigned": self.seats_assigned,
                "active": self.seats_active,
            },
        }


@dataclass
class _Requests:
    paths: list[DayPaths]
    latency: list[DayLatency]
    activity: dict[str, tuple[int, str]]
    """Per global user id: requests and the last day with one."""


def _requests(session: Session, where: Any) -> _Requests:
    """Per day by path, p50/p95 per day (nearest rank: the value at rank ceil(n * p), over
    answered requests) and per user, from one pass over the window's requests."""
    t = usage_events.c
    query = select(t.day, t.path, t.status, t.latency_ms, t.global_user_id).where(
        where, t.name == REQUESTED
    )
    per_day: dict[str, DayPaths] = {}
    samples: dict[str, list[float]] = defaultdict(list)
    activity: dict[str, tuple[int, str]] = {}
    for day, path, status, latency, gid in session.execute(query):
        row = per_day.get(day) or per_day.setdefault(day, DayPaths(day))
        if path == "direct":
            row.direct += 1
        elif path == "monolith":
            row.monolith += 1
        if latency is not None and status in ANSWERED:
            samples[day].append(latency)
        count, last = activity.get(gid, (0, day))
        activity[gid] = (count + 1, max(last, day))
    latency_rows = []
    for day in sorted(samples):
        ordered = sorted(samples[day])
        n = len(ordered)
        p50, p95 = ordered[math.ceil(n * 0.5) - 1], ordered[math.ceil(n * 0.95) - 1]
        latency_rows.append(DayLatency(day, round(float(p50), 1), round(float(p95), 1), n))
    return _Requests([per_day[day] for day in sorted(per_day)], latency_rows, activity)


def _feedback(session: Session, where: Any) -> tuple[list[Feedback], list[Feedback]]:
    """Shown/accepted/rejected per language and per client, from one grouped query."""
    t = usage_events.c
    by: tuple[dict[str, Feedback], dict[str, Feedback]] = ({}, {})
    query = (
        select(t.language, t.client_name, t.name, func.sum(t.count))
        .where(where, t.name.in_(FEEDBACK))
        .group_by(t.language, t.client_name, t.name)
    )
    for language, client, name, total in session.execute(query):
        for rows, key in zip(by, (language or "-", client or "-"), strict=True):
            entry = rows.setdefault(key, Feedback(key))
            setattr(entry, FEEDBACK[name], getattr(entry, FEEDBACK[name]) + int(total or 0))
    languages, clients = (sorted(r.values(), key=lambda row: (-row.shown, row.key)) for r in by)
    return languages, clients


def build(session: Session, secret: str, now: datetime, days: int = 30) -> Dashboard:
    """The dashboard over the last `days` days (today included)."""
    since = (now - timedelta(days=days - 1)).date().isoformat()
    t = usage_events.c
    instance_uuid = application_settings(session).instance_uuid
    ours = and_(t.instance_id == instance_uuid, t.day >= since)
    board = Dashboard(since=since, days=days)

    requests = _requests(session, ours)
    board.paths, board.latency = requests.paths, requests.latency
    board.languages, board.clients = _feedback(session, ours)
    purchases = seats.list_seats(session)
    holders = {name for entry in purchases for name in cast(list[str], entry["assigned"])}
    board.seats_purchased = sum(cast(int, entry["seats"]) for entry in purchases)
    board.seats_assigned = len(holders)
    for user in admin.list_users(session):
        gid = global_user_id(secret, instance_uuid, user.id)
        count, last = requests.activity.get(gid, (0, None))
        seat = user.username in holders
        if seat and count:
            board.seats_active += 1
        if seat or count:
            board.users.append(UserUsage(user.username, seat, count, last))
    board.users.sort(key=lambda row: (-row.completions, row.username))
    return board
