"""The usage event schema (one row per event, unique `event_id`)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

EventName = Literal[
    "code_suggestion_requested",
    "user_token_issued",
    "code_suggestion_shown",
    "code_suggestion_accepted",
    "code_suggestion_rejected",
]


class UsageEvent(BaseModel):
    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: EventName
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    realm: str | None = None
    instance_id: str | None = None
    global_user_id: str | None = None
    host_name: str | None = None
    language: str | None = None
    model_provider: str | None = None
    model_name: str | None = None
    path: Literal["direct", "monolith"] | None = None
    status: str | None = None  # "served" | "empty" | "error:<class>"
    latency_ms: float | None = None
    suggestion_chars: int | None = None
    count: int = 1  # for shown/accepted/rejected folded from client telemetry
    client_name: str | None = None
    client_version: str | None = None
    request_id: str | None = None


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
