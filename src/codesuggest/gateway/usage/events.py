"""What the gateway records usage events with (the event itself is `common.usage.UsageEvent`)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from codesuggest.common.usage import UsageEvent


class UsageRecorder(Protocol):
    async def record(self, *events: UsageEvent) -> None:
        """Durably store the events before returning (the caller then answers the client)."""
        ...

    def submit(self, *events: UsageEvent) -> asyncio.Future[None]:
        """Start storing the events; the future resolves once they are durable. Lets a caller
        prepare its answer while the write is under way, and await before sending it."""
        ...


class NullRecorder:
    """Usage tracking switched off (`usage.enabled = false`): events are dropped."""

    async def record(self, *events: UsageEvent) -> None:
        return None

    def submit(self, *events: UsageEvent) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
