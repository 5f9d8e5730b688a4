"""What the completion service hands back to its route, which alone turns it into HTTP
(`routes/completions.py`): an answer, a stream, or one of the ways a request can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from codesuggest.gateway.completions.schemas import CompletionResponse


@dataclass(frozen=True, slots=True)
class Answered:
    answer: CompletionResponse
    encoded: str  # the answer as JSON, serialized while its usage event was being stored
    # Bookkeeping for once the answer is sent (the stage histograms): not on its way out.
    after: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Streamed:
    events: AsyncIterator[bytes]  # SSE frames; the first chunk has already arrived


@dataclass(frozen=True, slots=True)
class Invalid:
    errors: list[dict[str, Any]]  # pydantic-shaped, `loc` starting with "body"


@dataclass(frozen=True, slots=True)
class RateLimited:
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class InferenceFailed:
    unreachable: bool = False  # no connection to the model server


@dataclass(frozen=True, slots=True)
class ClientLeft:
    pass


CompletionResult = Answered | Streamed | Invalid | RateLimited | InferenceFailed | ClientLeft
