"""Run a model call bounded by a deadline and by the client staying connected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from codesuggest.gateway.providers import ProviderTimeout

T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection; the model call was cancelled."""


async def until_done_or_gone(
    disconnected: Callable[[], Awaitable[None]], call: Awaitable[T], deadline: float
) -> T:
    """The call's result; cancels it (closing its upstream connection) when `disconnected()`
    returns (-> ClientGone) or `deadline` seconds pass (-> ProviderTimeout)."""
    task = asyncio.ensure_future(call)
    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait(
            (task, watcher), timeout=deadline, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task in done:
        return task.result()
    if watcher in done:
        raise ClientGone()
    raise ProviderTimeout(f"model call exceeded {deadline:.1f} s")
