"""Benchmark the admin pages: how long each takes to render with 10,000 usage events stored.

A real instance server (its own process, `codesuggest instance serve`, SQLite or
--database-url) holding `--users` users with seats and PATs and `--events` usage events spread
over the last 30 days (requests on both paths with latencies, shown/accepted/rejected counts
over five languages and three clients). An admin signs in with a password like a browser
(CSRF token, session cookie), then each page is fetched `--rounds` times one after another;
the time is the full HTTP round trip on loopback. Prints JSON.

    .venv/bin/python bench/admin.py [--events 10000] [--rounds 40] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from codesuggest.instance import admin, seats, sign_in
from codesuggest.instance.identity import global_user_id
from codesuggest.instance.models import usage_events, utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from instance_process import free_port, instance_env, running_instance

PASSWORD = "benchmark admin password"
LANGUAGES = ("python", "go", "typescript", "rust", "java")
CLIENTS = ("gitlab-language-server/7.40.0", "codesuggest-client/0.1.0", "vscode/1.99")
PAGES = (
    "/admin/dashboard",
    "/admin/users",
    "/admin/users/bench0",
    "/admin/seats",
    "/admin/settings",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def provision(store: Store, users: int, events: int) -> None:
    now = utc(time.time())
    rng = random.Random(7)
    with store.session() as s:
        admin.create_user(s, "root", now, admin=True)
        sign_in.set_password(s, "root", PASSWORD)
        seats.purchase(s, users + 10, now)
        ids = []
        for i in range(users):
            user = admin.create_user(s, f"bench{i}", now)
            seats.assign(s, user.username, now)
            admin.create_token(s, user.username, now)
            ids.append(user.id)
        instance_uuid = application_settings(s).instance_uuid
    gids = [global_user_id(store.secret, instance_uuid, i) for i in ids]
    rows = []
    for _ in range(events):
        when = (now - timedelta(seconds=rng.uniform(0, 30 * 86400))).astimezone(UTC)
        naive = when.replace(tzinfo=None)
        requested = rng.random() < 0.6
        rows.append(
            {
                "event_id": uuid.uuid4().hex,
                "name": "code_suggestion_requested"
                if requested
                else rng.choice(
                    (
                        "code_suggestion_shown",
                        "code_suggestion_accepted",
                        "code_suggestion_rejected",
                    )
                ),
                "occurred_at": naive,
                "day": naive.date().isoformat(),
                "realm": "self-managed",
                "instance_id": instance_uuid,
                "global_user_id": rng.choice(gids),
                "language": rng.choice(LANGUAGES),
                "path": "direct" if rng.random() < 0.8 else "monolith",
                "status": rng.choice(("served", "served", "served", "empty"))
                if requested
                else None,
                "latency_ms": rng.lognormvariate(3.5, 0.6) if requested else None,
                "count": 1 if requested else rng.randint(1, 4),
                "client_name": rng.choice(CLIENTS),
                "received_at": datetime.now(UTC).replace(tzinfo=None),
            }
        )
    with store.engine.begin() as conn:
        conn.execute(usage_events.insert(), rows)


def sign_in_as_admin(client: httpx.Client) -> None:
    form = client.get("/admin/sign_in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    reply = client.post(
        "/admin/sign_in",
        data={"csrf_token": token.group(1), "username": "root", "password": PASSWORD},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/dashboard", reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = instance_env(tmp, port, args.database_url)
        os.environ.update(env)
        store = open_store(InstanceSettings())
        provision(store, args.users, args.events)
        store.dispose()
        pages: dict[str, dict[str, float]] = {}
        with (
            running_instance(env, port) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            sign_in_as_admin(client)
            for path in PAGES:
                for _ in range(3):  # warm up templates and connections
                    assert client.get(path).status_code == 200
                samples = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    reply = client.get(path)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert reply.status_code == 200, (path, reply.status_code)
                pages[path] = {
                    "p50": round(statistics.median(samples), 2),
                    "p95": round(percentile(samples, 0.95), 2),
                    "bytes": len(reply.content),
                }
    print(
        json.dumps(
            {
                "benchmark": "instance.admin_pages",
                "database": "postgresql" if args.database_url else "sqlite",
                "usage_events": args.events,
                "users": args.users,
                "rounds": args.rounds,
                "render_ms": pages,
                "target_p50_ms": 200,
                "all_under_target": all(page["p50"] < 200 for page in pages.values()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
