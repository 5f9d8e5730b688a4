"""The usage dashboard's numbers from known usage events, on SQLite and PostgreSQL: only this
instance's events in the window count, percentiles by the nearest-rank method, feedback per
language and client, seat utilization. (The pages in a browser: tests/e2e/test_admin_pages.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from codesuggest.instance import admin, seats
from codesuggest.instance.admin_ui import dashboard
from codesuggest.instance.identity import global_user_id
from codesuggest.instance.models import usage_events
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from support.databases import postgres_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
COLUMNS = (
    "instance_id",
    "global_user_id",
    "path",
    "status",
    "latency_ms",
    "language",
    "client_name",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    def opened(url: str | None) -> Store:
        return open_store(InstanceSettings(data_dir=tmp_path, secret="s" * 40, database_url=url))

    if request.param == "postgres":
        with postgres_database("cs_dashboard") as url:
            store = opened(url)
            yield store
            store.dispose()
    else:
        store = opened(None)
        yield store
        store.dispose()


def add_events(store: Store, *events: dict[str, object]) -> None:
    received = NOW.replace(tzinfo=None)
    rows = []
    for event in events:
        when = event.pop("when", NOW)
        assert isinstance(when, datetime)
        naive = when.astimezone(UTC).replace(tzinfo=None)
        rows.append(
            dict.fromkeys(COLUMNS)
            | {
                "event_id": uuid.uuid4().hex,
                "occurred_at": naive,
                "day": naive.date().isoformat(),
                "count": 1,
                "received_at": received,
            }
            | event
        )
    with store.engine.begin() as conn:
        conn.execute(usage_events.insert(), rows)


def test_the_dashboard_counts_this_instances_events_in_the_window(store):
    with store.session() as s:
        instance = application_settings(s).instance_uuid
        seats.purchase(s, 5, NOW)
        for name in ("ana", "bo", "cy"):
            admin.create_user(s, name, NOW)
        ana = global_user_id(store.secret, instance, admin.list_users(s)[0].id)
    with store.session() as s:
        seats.assign(s, "ana", NOW)
        seats.assign(s, "bo", NOW)
    yesterday = NOW - timedelta(days=1)
    ours = {"instance_id": instance, "global_user_id": ana}
    requested = {"name": "code_suggestion_requested", "status": "served", **ours}
    add_events(
        store,
        # Today: 20 served on the direct path with latencies 1..20 ms, one error, one monolith.
        *({**requested, "path": "direct", "latency_ms": float(ms)} for ms in range(1, 21)),
        {**requested, "path": "direct", "status": "error_provider", "latency_ms": 900.0},
        {**requested, "path": "monolith", "status": "empty", "latency_ms": 21.0},
        # Yesterday: 3 on the direct path, latencies 5, 7, 30.
        *(
            {**requested, "path": "direct", "latency_ms": ms, "when": yesterday}
            for ms in (30.0, 5.0, 7.0)
        ),
        {"name": "code_suggestion_shown", "count": 8, "language": "go", "client_name": "lsp/7",
         **ours},
        {"name": "code_suggestion_accepted", "count": 2, "language": "go", "client_name": "lsp/7",
         **ours},
        {"name": "code_suggestion_rejected", "count": 5, "language": "go", "client_name": "vim",
         **ours},
        {"name": "code_suggestion_shown", "count": 4, "language": "python", "client_name": "vim",
         **ours},
        # Not counted: another instance's events, and events older than the window.
        {**requested, "path": "direct", "latency_ms": 1.0, "instance_id": "another-instance"},
        {"name": "code_suggestion_shown", "count": 50, "language": "go",
         "instance_id": "another-instance"},
        {**requested, "path": "direct", "latency_ms": 1.0, "when": NOW - timedelta(days=30)},
    )  # fmt: skip

    with store.session() as s:
        board = dashboard.build(s, store.secret, NOW, days=30)

    assert board.since == "2026-11-02"
    today, before = NOW.date().isoformat(), yesterday.date().isoformat()
    assert [(d.day, d.direct, d.monolith) for d in board.paths] == [
        (before, 3, 0),
        (today, 21, 1),
    ]
    assert board.completions == 25 and board.direct_share == pytest.approx(24 / 25)
    # Nearest rank: ceil(0.5 n) and ceil(0.95 n); 21 answered today (the error is not).
    assert [(d.day, d.p50, d.p95, d.samples) for d in board.latency] == [
        (before, 7.0, 30.0, 3),
        (today, 11.0, 20.0, 21),
    ]
    languages = {f.key: (f.shown, f.accepted, f.rejected, f.rate) for f in board.languages}
    assert languages == {"go": (8, 2, 5, 0.25), "python": (4, 0, 0, 0.0)}
    clients = {f.key: (f.shown, f.accepted, f.rejected) for f in board.clients}
    assert clients == {"lsp/7": (8, 2, 0), "vim": (4, 0, 5)}
    assert (board.seats_purchased, board.seats_assigned, board.seats_active) == (5, 2, 1)
    assert [(u.username, u.seat, u.completions, u.last_day) for u in board.users] == [
        ("ana", True, 25, today),
        ("bo", True, 0, None),
    ]
    charts = board.chart_data()
    assert charts["paths"] == {"days": [before, today], "direct": [3, 21], "monolith": [0, 1]}
    assert charts["languages"]["rate"] == [25.0, 0.0]


def test_an_instance_without_events_or_seats_has_an_empty_dashboard(store):
    with store.session() as s:
        board = dashboard.build(s, store.secret, NOW, days=7)
    assert board.since == "2026-11-25"
    assert board.completions == 0 and board.direct_share is None
    assert not board.paths and not board.latency and not board.languages and not board.users
    assert (board.seats_purchased, board.seats_assigned, board.seats_active) == (0, 0, 0)
