"""GitLab's own language server on our stack: inline completions on the direct path vs through
the instance, interleaved in the same run, same model.

Starts `codesuggest up`'s stack on loopback (embedded engine, SQLite), installs the GitLab
Language Server as the end-to-end tests do (`tests/e2e/gitlab_ls.py`: npm `@gitlab/web-ide`,
cached), and runs two copies of it for two users of the self-managed instance: one signed in
while direct connections are on, one after an admin turned them off (so it completes through
`/api/v4/code_suggestions/completions`). Each request opens a new file (so the server's own
suggestion cache cannot answer) and asks an inline completion at its end; the time is measured
at the LSP client, from request to answer; it includes the 250 ms the server waits after
the last keystroke before it asks (its debounce, the same on both paths). Prints JSON.

    .venv/bin/python bench/gitlab_ls.py [--requests 60] [--warmup 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from codesuggest.common.logs import configure  # noqa: E402
from codesuggest.instance import admin, seats  # noqa: E402
from codesuggest.instance.store import open_store  # noqa: E402
from codesuggest.stack.provision import instance_settings  # noqa: E402
from codesuggest.stack.runner import Stack, benchmark_stack  # noqa: E402
from e2e import gitlab_ls  # noqa: E402

REALM = "self-managed"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


def admin_do(stack: Stack, action) -> object:  # type: ignore[no-untyped-def]
    store = open_store(instance_settings(REALM, stack.layout, stack.state.get("license_key")))
    try:
        with store.session() as session:
            return action(session)
    finally:
        store.dispose()


def new_user(stack: Stack, name: str) -> str:
    now = datetime.now(UTC)
    admin_do(stack, lambda s: admin.create_user(s, name, now))
    admin_do(stack, lambda s: seats.assign(s, name, now))
    return str(admin_do(stack, lambda s: admin.create_token(s, name, now, ["api"], 1).token))


async def signed_in(session: gitlab_ls.Session) -> None:
    await session.wait_for(lambda: session.feature_checks("authentication") == [], 60)


async def run(stack: Stack, bundle: Path, tmp: Path, requests: int, warmup: int) -> dict:
    url = stack.layout.url(REALM)
    direct_pat, monolith_pat = new_user(stack, "bench-direct"), new_user(stack, "bench-monolith")
    latencies: dict[str, list[float]] = {"direct": [], "monolith": []}
    empty = {"direct": 0, "monolith": 0}
    async with gitlab_ls.language_server(
        bundle, url, direct_pat, "bench-direct", tmp / "direct"
    ) as direct:
        await signed_in(direct)
        warm = direct.open("warm.py", "import os\n\nx = os.")
        await direct.inline(warm, 2, len("x = os."))  # the direct path's token is fetched now
        admin_do(stack, lambda s: admin.set_setting(s, "disabled_direct_code_suggestions", True))
        try:
            async with gitlab_ls.language_server(
                bundle, url, monolith_pat, "bench-monolith", tmp / "monolith"
            ) as monolith:
                await signed_in(monolith)
                sessions = {"direct": direct, "monolith": monolith}
                for i in range(warmup + requests):
                    for path, session in sessions.items():
                        line = f"value_{i} = os.path."
                        uri = session.open(f"f{i}.py", f"import os\n\n{line}")
                        t0 = time.perf_counter()
                        result = await session.inline(uri, 2, len(line))
                        elapsed = time.perf_counter() - t0
                        if i >= warmup:
                            latencies[path].append(elapsed)
                            empty[path] += not result.items
        finally:
            admin_do(
                stack, lambda s: admin.set_setting(s, "disabled_direct_code_suggestions", False)
            )
    return {
        path: {
            "requests": len(values),
            "empty": empty[path],
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p90_ms": round(percentile(values, 0.9) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1),
        }
        for path, values in latencies.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="measured, per path")
    parser.add_argument("--warmup", type=int, default=6)
    args = parser.parse_args()
    configure("WARNING")
    bundle = gitlab_ls.install()
    with tempfile.TemporaryDirectory(prefix="codesuggest-bench-") as tmp:
        stack = benchmark_stack(Path(tmp))
        try:
            stack.up()
            result = asyncio.run(run(stack, bundle, Path(tmp), args.requests, args.warmup))
        finally:
            stack.down()
    print(
        json.dumps(
            {
                "benchmark": "GitLab Language Server inline completions, direct vs monolith",
                "language_server": gitlab_ls.LANGUAGE_SERVER_VERSION,
                "stack": "every part a process on loopback, embedded engine, SQLite",
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
