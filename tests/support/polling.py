"""Waiting in async tests for what another task, thread or process brings about."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `predicate` (sync or async) until it holds, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if await value if inspect.isawaitable(value) else value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)
