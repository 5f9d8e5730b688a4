"""A flooding client in its own process (its CPU is not the gateway's test process's):
`python flood_client.py URL HEADERS_JSON BODY_JSON CONCURRENCY MAX_REQUESTS STOP_FILE` sends
completions as fast as it can until MAX_REQUESTS or until STOP_FILE exists, then prints
`{"statuses": {status: count}, "retry_after": [...]}` as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path


async def flood(url: str, headers: dict, body: dict, workers: int, cap: int, stop: Path) -> dict:
    import httpx

    statuses: Counter[int] = Counter()
    retry_after: list[str] = []
    sent = 0

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=workers)) as c:

        async def worker() -> None:
            nonlocal sent
            while sent < cap and not stop.exists():  # noqa: ASYNC240 - a stat, cheap enough
                sent += 1
                response = await c.post(url, json=body, headers=headers)
                statuses[response.status_code] += 1
                if response.status_code == 429 and len(retry_after) < 20:
                    retry_after.append(response.headers.get("retry-after", ""))

        await asyncio.gather(*(worker() for _ in range(workers)))
    return {"statuses": dict(statuses), "retry_after": retry_after}


if __name__ == "__main__":
    # The flooder's own CPU stands for another machine's: it must not slow the machine the
    # test measures on, only the gateway with what it sends.
    os.nice(19)
    url, headers, body, workers, cap, stop = sys.argv[1:7]
    print("started", flush=True)
    result = asyncio.run(
        flood(url, json.loads(headers), json.loads(body), int(workers), int(cap), Path(stop))
    )
    print(json.dumps(result), flush=True)
