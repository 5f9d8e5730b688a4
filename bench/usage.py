"""Usage outbox benchmark: what `await outbox.record(event)` costs a request, per event, with
N requests recording concurrently while the shipper delivers to a JSONL sink, and how long the
event loop is blocked meanwhile.

Prints one JSON object. Run: .venv/bin/python bench/usage.py [--events 4000] [--dir PATH]
(`--dir` picks the disk; the default is a temporary directory.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.usage.outbox import Outbox
from codesuggest.gateway.usage.sinks import JsonlSink


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def event(i: int) -> UsageEvent:
    return UsageEvent(
        name="code_suggestion_requested",
        realm="self-managed",
        instance_id="bench-instance",
        global_user_id=f"user-{i % 50}",
        language="python",
        model_provider="embedded",
        model_name="kn6",
        path="direct",
        status="served",
        latency_ms=12.5,
        suggestion_chars=40,
        request_id=f"req-{i}",
    )


async def loop_lag(stop: asyncio.Event, samples: list[float]) -> None:
    """How late a 1 ms timer fires: the event loop blocked on anything shows here."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        samples.append(time.perf_counter() - started - 0.001)


async def run(directory: Path, events: int, concurrency: int, synchronous: str) -> dict:
    outbox = Outbox(
        directory / "usage-outbox.db",
        JsonlSink(directory / "usage.jsonl"),
        synchronous=synchronous,
        flush_interval=0.05,
    )
    await outbox.start()
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            e = event(queue.get_nowait())
            started = time.perf_counter()
            await outbox.record(e)
            latencies.append(time.perf_counter() - started)

    stop, lags = asyncio.Event(), []
    lag_task = asyncio.create_task(loop_lag(stop, lags))
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    stop.set()
    await lag_task
    commits = outbox.commits
    await outbox.aclose()
    return {
        "concurrency": concurrency,
        "synchronous": synchronous,
        "events": events,
        "record_ms_p50": round(statistics.median(latencies) * 1000, 3),
        "record_ms_p99": round(pct(latencies, 0.99) * 1000, 3),
        "events_per_s": round(events / elapsed),
        "events_per_commit": round(events / max(commits, 1), 1),
        "loop_lag_ms_p99": round(pct(lags, 0.99) * 1000, 3) if lags else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        results = []
        for synchronous in ("FULL", "NORMAL"):
            for concurrency in (1, 16, 64, 256):
                n = min(args.events, 1000) if concurrency == 1 else args.events
                where = base / f"{synchronous}-{concurrency}"
                results.append(await run(where, n, concurrency, synchronous))
    print(json.dumps({"benchmark": "usage-outbox-record", "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
