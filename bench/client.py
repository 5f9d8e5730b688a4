"""One warm client, direct path vs monolith path, interleaved in the same run, same model.

Starts the real portal, instances and gateway as processes on loopback (`codesuggest up`'s
stack: SQLite, the gateway's embedded engine), then, as the self-managed demo user, sends
completions one at a time, alternating the two paths, and prints JSON: completions/second
and p50/p99 latency for each path, plus the model time the gateway reported (Server-Timing),
so the difference is the path and not the model.

    .venv/bin/python bench/client.py [--requests 400] [--warmup 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from codesuggest.client.service import CompletionInput, SuggestionClient
from codesuggest.common.logs import configure
from codesuggest.stack.runner import benchmark_stack

SNIPPETS = [
    "import os\n\ndef read_file(path):\n    with open(path) as f:\n        return f.",
    "def add(a, b):\n    return ",
    "class User:\n    def __init__(self, name):\n        self.",
    "for i in range(10):\n    print(",
    "import json\n\ndata = json.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)
    return ordered[index]


def summary(latencies: list[float], model_ms: list[float], models: set[str]) -> dict[str, object]:
    return {
        "models": sorted(models),
        "requests": len(latencies),
        "completions_per_second": round(len(latencies) / sum(latencies), 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "model_p50_ms_server_timing": round(percentile(model_ms, 0.50), 2) if model_ms else None,
    }


async def run(instance_url: str, pat: str, requests: int, warmup: int) -> dict[str, object]:
    client = SuggestionClient(instance_url, pat)
    latencies: dict[str, list[float]] = {"direct": [], "monolith": []}
    model_ms: dict[str, list[float]] = {"direct": [], "monolith": []}
    models: dict[str, set[str]] = {"direct": set(), "monolith": set()}
    try:
        for i in range(warmup + requests):
            snippet = SNIPPETS[(i // 2) % len(SNIPPETS)]
            request = CompletionInput("app/main.py", snippet, "\n", "python", intent="completion")
            via_monolith = i % 2 == 1
            t0 = time.perf_counter()
            suggestion = await client.complete(request, via_monolith=via_monolith)
            elapsed = time.perf_counter() - t0
            expected = "monolith" if via_monolith else "direct"
            if suggestion.path != expected:
                raise RuntimeError(f"request {i} took the {suggestion.path} path")
            if i >= warmup:
                latencies[expected].append(elapsed)
                models[expected].add(f"{suggestion.model_engine}/{suggestion.model_name}")
                model = suggestion.timings.get("server_timing_ms", {}).get("model")
                if model is not None:
                    model_ms[expected].append(model)
    finally:
        await client.aclose()
    return {name: summary(latencies[name], model_ms[name], models[name]) for name in latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured, both paths")
    parser.add_argument("--warmup", type=int, default=40)
    args = parser.parse_args()
    configure("WARNING")  # logs to stderr; stdout is the JSON
    with tempfile.TemporaryDirectory(prefix="codesuggest-bench-") as tmp:
        stack = benchmark_stack(Path(tmp))
        try:
            stack.up()
            pat = stack.state["instances"]["self-managed"]["user_pat"]
            instance_url = stack.layout.url("self-managed")
            result = asyncio.run(run(instance_url, pat, args.requests, args.warmup))
        finally:
            stack.down()
    print(
        json.dumps(
            {
                "benchmark": "client direct vs monolith (one warm client, interleaved)",
                "stack": "every part a process on loopback, embedded engine, SQLite",
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
