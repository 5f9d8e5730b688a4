"""Load benchmark of the production layout on loopback, with faults at given seconds.

Starts: the portal and a self-managed instance on PostgreSQL (throwaway databases on this
machine's server), the instance on a Redis of its own (so it can be stopped), R gateway
replicas sharing one signing key, and nginx with the config `codesuggest edge nginx-config`
renders. Creates N users, each with a seat and a PAT, through the instance's admin functions.
Each simulated IDE user is a `SuggestionClient` (10 s timeout): it opens at a random second of
the first `--ramp` seconds, its first completion calls `direct_access`, then it completes every
0.5-2 s (uniform) for the duration. Prints one JSON object.

    .venv/bin/python bench/load.py --users 500 --duration 60 --replicas 2
    .venv/bin/python bench/load.py --kill gateway:1@20      # SIGKILL replica 1 at 20 s
    .venv/bin/python bench/load.py --kill instance@20       # SIGKILL the instance at 20 s
    .venv/bin/python bench/load.py --stop redis@20          # stop the instance's Redis

Usage events are counted at the end, after every replica has stopped (SIGTERM: it ships its
outbox): completion events in the replicas' `usage.jsonl` plus those still in an outbox (a
SIGKILLed replica's), deduplicated by `event_id`, against the completions answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from codesuggest.client.service import CompletionFailed, CompletionInput, SuggestionClient
from codesuggest.edge.nginx import NginxOptions, render
from codesuggest.instance import admin, seats
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import open_store
from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import PrivateKey

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SECRET = "load-benchmark-secret-0123456789abcdef"
SNIPPETS = [
    ("app/maths.py", "python", "def add(a, b):\n    return ", "\n"),
    ("app/greet.py", "python", "def greet(name):\n    return f'Hello, ", "\n"),
    ("src/sum.js", "javascript", "function sum(xs) {\n  return xs.reduce(", "\n}\n"),
    ("cmd/main.go", "go", "func main() {\n\tfmt.Println(", "\n}\n"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


@contextlib.contextmanager
def database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Part:
    """One server process of the layout."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str | None
    process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> Part:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        if wait and self.ready_url:
            wait_for(lambda: self.alive() and answers(self.ready_url), 120, self.name)
        return self

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-1500:]}")
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def serve(part: str, port: int) -> list[str]:
    return [sys.executable, "-m", "codesuggest.stack.serve_part", part, "serve"] + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@dataclass
class Layout:
    root: Path
    replicas: int
    parts: dict[str, Part] = field(default_factory=dict)
    pats: list[str] = field(default_factory=list)
    instance_url: str = ""
    edge_url: str = ""

    def gateway_dirs(self) -> list[Path]:
        return [self.root / f"gateway-{i}" for i in range(self.replicas)]


def start_layout(
    root: Path, users: int, replicas: int, portal_db: str, instance_db: str, nginx: str
) -> Layout:
    layout = Layout(root, replicas)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CODESUGGEST_")}
    base_env["PYTHONUNBUFFERED"] = "1"
    logs = root / "logs"
    logs.mkdir()

    # Portal: a license whose add-on has a seat for every user.
    portal_port = free_port()
    portal_url = f"http://127.0.0.1:{portal_port}"
    portal_env = base_env | {
        "CODESUGGEST_PORTAL_URL": portal_url,
        "CODESUGGEST_PORTAL_DATA_DIR": str(root / "portal"),
        "CODESUGGEST_PORTAL_DATABASE_URL": portal_db,
        "CODESUGGEST_PORTAL_SECRET": SECRET,
    }
    portal_admin = PortalAdmin.open(
        PortalSettings(
            url=portal_url, data_dir=root / "portal", database_url=portal_db, secret=SECRET
        )
    )
    portal_admin.ensure_signing_key()
    license = portal_admin.create_license(customer="load benchmark")
    portal_admin.add_addon(license.id, seats=users)
    portal_admin.close()
    layout.parts["portal"] = Part(
        "portal",
        serve("portal", portal_port),
        portal_env,
        logs / "portal.log",
        f"{portal_url}/monitoring/healthz",
    ).start()

    # Redis of our own, for the instance.
    redis_port = free_port()
    layout.parts["redis"] = Part(
        "redis",
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(root)],
        base_env,
        logs / "redis.log",
        None,
    ).start()

    # Gateways behind nginx.
    key_file = root / "gateway-signing.pem"
    PrivateKey.generate().write(key_file)
    gateway_urls = []
    for index, data_dir in enumerate(layout.gateway_dirs()):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        gateway_urls.append(url)
        env = base_env | {
            "CODESUGGEST_GATEWAY_PUBLIC_URL": url,
            "CODESUGGEST_GATEWAY_DATA_DIR": str(data_dir),
            "CODESUGGEST_GATEWAY_SIGNING_KEY_FILE": str(key_file),
            "CODESUGGEST_GATEWAY_TRUSTED_ISSUERS": json.dumps(
                [{"url": portal_url, "kind": "portal"}]
            ),
            "CODESUGGEST_GATEWAY_LOG_LEVEL": "WARNING",
        }
        layout.parts[f"gateway:{index}"] = Part(
            f"gateway:{index}",
            serve("gateway", port),
            env,
            logs / f"gateway-{index}.log",
            f"{url}/monitoring/ready",
        )
    for index in range(replicas):
        layout.parts[f"gateway:{index}"].start(wait=False)
    for index in range(replicas):
        part = layout.parts[f"gateway:{index}"]
        assert part.ready_url is not None
        wait_for(lambda p=part: p.alive() and answers(p.ready_url), 180, part.name)

    runtime = root / "nginx"
    runtime.mkdir()
    runtime.chmod(0o755)
    root.chmod(0o755)
    edge_port = free_port()
    layout.edge_url = f"http://127.0.0.1:{edge_port}"
    conf = runtime / "nginx.conf"
    conf.write_text(
        render(
            NginxOptions(
                gateways=gateway_urls,
                listen=f"127.0.0.1:{edge_port}",
                runtime_dir=str(runtime),
                foreground=True,
            )
        )
    )
    layout.parts["edge"] = Part(
        "edge",
        [nginx, "-c", str(conf)],
        base_env,
        logs / "edge.log",
        f"{layout.edge_url}/ai/monitoring/healthz",
    ).start()

    # The instance: users, seats and PATs through the admin functions, after the token sync.
    instance_port = free_port()
    layout.instance_url = f"http://127.0.0.1:{instance_port}"
    instance_env = base_env | {
        "CODESUGGEST_INSTANCE_URL": layout.instance_url,
        "CODESUGGEST_INSTANCE_DATA_DIR": str(root / "instance"),
        "CODESUGGEST_INSTANCE_DATABASE_URL": instance_db,
        "CODESUGGEST_INSTANCE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CODESUGGEST_INSTANCE_SECRET": SECRET,
        "CODESUGGEST_INSTANCE_REALM": "self-managed",
        "CODESUGGEST_INSTANCE_PORTAL_URL": portal_url,
        "CODESUGGEST_INSTANCE_LICENSE_KEY": license.key,
        "CODESUGGEST_INSTANCE_EDGE_URL": layout.edge_url,
        "CODESUGGEST_INSTANCE_GATEWAY_URL": f"{layout.edge_url}/ai",
        "CODESUGGEST_INSTANCE_LOG_LEVEL": "WARNING",
    }
    layout.parts["instance"] = Part(
        "instance",
        serve("instance", instance_port),
        instance_env,
        logs / "instance.log",
        f"{layout.instance_url}/monitoring/ready",
    ).start()
    store = open_store(
        InstanceSettings(
            data_dir=root / "instance",
            CODESUGGEST_INSTANCE_DATABASE_URL=instance_db,
            secret=SECRET,
            realm="self-managed",
            sync_enabled=False,
        )
    )
    wait_for(
        lambda: httpx.get(layout.instance_url + "/monitoring/ready").json()["instance_token"],
        60,
        "the instance's token sync",
    )
    now = datetime.now(UTC)
    with store.session() as session:
        for i in range(users):
            admin.create_user(session, f"user{i}", now)
    with store.session() as session:
        for i in range(users):
            seats.assign(session, f"user{i}", now)
            layout.pats.append(admin.create_token(session, f"user{i}", now, ["api"], 1).token)
    store.dispose()
    return layout


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    direct_access_calls: int = 0
    faults: list[dict[str, object]] = field(default_factory=list)


async def ide_user(
    pat: str,
    instance_url: str,
    http: httpx.AsyncClient,
    until: float,
    results: Results,
    rng: random.Random,
    ramp: float,
) -> None:
    client = SuggestionClient(instance_url, pat, http=http, timeout=10.0)
    try:
        await asyncio.sleep(rng.uniform(0, ramp))  # editors open over the first `ramp` s
        while time.monotonic() < until:
            name, lang, above, below = rng.choice(SNIPPETS)
            started = time.perf_counter()
            try:
                suggestion = await client.complete(CompletionInput(name, above, below, lang))
            except Exception as exc:  # noqa: BLE001 - a benchmark counts, it does not stop
                # Whether this user had connection details (a direct path) when it failed.
                had = "had details" if client.details.stats.last_status == 201 else "no details"
                text = exc.message if isinstance(exc, CompletionFailed) else str(exc)
                results.errors[
                    f"{type(exc).__name__}: {text.split(' calling ')[0][:80]} ({had})"
                ] += 1
            else:
                results.latencies.append((time.perf_counter() - started) * 1000)
                results.paths[suggestion.path] += 1
            await asyncio.sleep(rng.uniform(0.5, 2.0))
    finally:
        results.direct_access_calls += client.details.stats.calls
        await client.aclose()


def parse_fault(text: str, kind: str) -> tuple[str, float]:
    target, _, at = text.partition("@")
    if not at:
        raise argparse.ArgumentTypeError(f"--{kind} {text!r}: use TARGET@SECONDS")
    return target, float(at)


async def run_load(
    layout: Layout,
    duration: float,
    faults: list[tuple[str, str, float]],
    results: Results,
    seed: int,
    ramp: float,
) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    until = started + duration

    async def fault(action: str, target: str, at: float) -> None:
        await asyncio.sleep(at)
        part = layout.parts[target]
        await asyncio.to_thread(part.kill if action == "kill" else part.stop)
        results.faults.append(
            {"action": action, "target": target, "at_s": round(time.monotonic() - started, 2)}
        )

    # One pool shared by the simulated users, with a connection for each as an editor has;
    # never waiting for a pooled connection (the load generator is not what is measured).
    users = len(layout.pats)
    limits = httpx.Limits(max_connections=2 * users, max_keepalive_connections=2 * users)
    timeout = httpx.Timeout(10.0, pool=None)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        tasks = [asyncio.create_task(fault(*f)) for f in faults]
        await asyncio.gather(
            *(
                ide_user(
                    pat,
                    layout.instance_url,
                    http,
                    until,
                    results,
                    random.Random(rng.random()),
                    ramp,
                )
                for pat in layout.pats
            )
        )
        for task in tasks:
            task.cancel()


def count_usage(layout: Layout) -> dict[str, object]:
    """Completion events shipped or still in an outbox (deduplicated), and mints per user."""
    served: set[str] = set()
    other: Counter[str] = Counter()
    mints: Counter[str] = Counter()
    seen: set[str] = set()

    def take(payload: dict[str, object]) -> None:
        event_id = str(payload.get("event_id"))
        if event_id in seen:
            return
        seen.add(event_id)
        if payload.get("name") == "user_token_issued":
            mints[str(payload.get("global_user_id"))] += 1
        elif payload.get("name") == "code_suggestion_requested":
            if payload.get("status") in {"served", "empty"}:
                served.add(event_id)
            else:
                other[str(payload.get("status"))] += 1

    pending = 0
    for data_dir in layout.gateway_dirs():
        jsonl = data_dir / "usage.jsonl"
        if jsonl.exists():
            for line in jsonl.read_text().splitlines():
                take(json.loads(line))
        outbox = data_dir / "usage-outbox.db"
        if outbox.exists():
            with sqlite3.connect(outbox) as db:
                rows = db.execute("SELECT payload FROM outbox WHERE delivered_at IS NULL")
                for (text,) in rows:
                    pending += 1
                    take(json.loads(text))
    return {
        "completion_events": len(served),
        "completion_error_events": dict(other),
        "left_in_outboxes": pending,
        "mints": sum(mints.values()),
        "users_minted_for": len(mints),
    }


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--replicas", type=int, default=2, help="gateway replicas")
    parser.add_argument(
        "--kill",
        action="append",
        default=[],
        help="SIGKILL a part at a second: gateway:N@S or instance@S",
    )
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        help="stop a part at a second: redis@S, gateway:N@S (SIGTERM)",
    )
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="editors open over the first RAMP seconds"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    faults = [("kill", *parse_fault(f, "kill")) for f in args.kill]
    faults += [("stop", *parse_fault(f, "stop")) for f in args.stop]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = Path(tempfile.mkdtemp(prefix="codesuggest-load-"))
    results = Results()
    layout: Layout | None = None
    load_before = os.getloadavg()
    try:
        with database("cs_load_portal") as portal_db, database("cs_load_instance") as inst_db:
            t0 = time.monotonic()
            layout = start_layout(root, args.users, args.replicas, portal_db, inst_db, nginx)
            for _, target, _ in faults:
                if target not in layout.parts:
                    parser.error(f"unknown fault target {target!r}: {', '.join(layout.parts)}")
            setup_s = time.monotonic() - t0
            asyncio.run(run_load(layout, args.duration, faults, results, args.seed, args.ramp))
            load_during = os.getloadavg()
            for name, part in layout.parts.items():
                if name.startswith("gateway:"):
                    part.stop()  # SIGTERM: ships its outbox
            usage = count_usage(layout)
            for part in reversed(layout.parts.values()):
                part.stop()
    finally:
        if layout is not None:
            for part in layout.parts.values():
                part.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    answered = len(results.latencies)
    print(
        json.dumps(
            {
                "users": args.users,
                "duration_s": args.duration,
                "ramp_s": args.ramp,
                "gateway_replicas": args.replicas,
                "faults": results.faults,
                "completions": answered,
                "completions_per_s": round(answered / args.duration, 1),
                "by_path": dict(results.paths),
                "errors": sum(results.errors.values()),
                "errors_by_kind": dict(results.errors),
                "latency_ms": {
                    "p50": pct(results.latencies, 0.50),
                    "p95": pct(results.latencies, 0.95),
                    "p99": pct(results.latencies, 0.99),
                },
                "direct_access_calls": results.direct_access_calls,
                "mints_per_user": round(usage["mints"] / args.users, 3),  # type: ignore[operator]
                "usage": usage
                | {
                    "answered": answered,
                    "counted_equals_answered": usage["completion_events"] == answered,
                },
                "setup_s": round(setup_s, 1),
                "machine": {
                    "cpus": os.cpu_count(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after_load": [round(x, 2) for x in load_during],
                },
                "logs": str(root / "logs") if args.keep else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
