"""Run a model call bounded by a deadline and by the client staying connected."""

from __future__ import annotations

import asyncio
import contextlib
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
    returns (-> ClientGone) or `deadline` seconds pass (-> ProviderTimeout).

    The call runs in this task (one task less per request than a task of its own): a watcher
    task cancels this one when the client leaves."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        with contextlib.suppress(Exception):  # the client can no longer be heard: it is gone
            await disconnected()
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    timeout = asyncio.timeout(deadline)
    try:
        async with timeout:
            return await call
    except asyncio.CancelledError:
        if gone and current.uncancel() == 0:
            raise ClientGone() from None
        raise
    except TimeoutError:
        if timeout.expired():
            raise ProviderTimeout(f"model call exceeded {deadline:.1f} s") from None
        raise
    finally:
        watcher.cancel()
