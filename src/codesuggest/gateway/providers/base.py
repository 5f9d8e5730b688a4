"""The one interface every model provider implements, and the failures it may raise.

`complete()` returns the whole text; `stream()` yields text chunks. Cancellation is asyncio
cancellation: when the client goes away the route cancels the task awaiting the provider, and
an HTTP provider's `async with` then closes its connection to the model server at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from codesuggest.gateway.postprocess import Mode
from codesuggest.gateway.prompts import Prompt


class ProviderError(Exception):
    """The model call failed; `kind` is the short class used in usage events and logs."""

    kind = "unavailable"


class ProviderRateLimited(ProviderError):
    kind = "rate_limited"

    def __init__(self, message: str = "rate limited", retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    kind = "timeout"


class ProviderUnavailable(ProviderError):
    kind = "unavailable"


class ProviderUnreachable(ProviderUnavailable):
    """No connection to the model server (refused, no route, unknown host)."""


# Where a completion of each mode ends: a mid-line completion at the line's end, a whole-line
# one at the first blank line (post-processing then keeps the cursor's block).
MODE_STOPS: dict[Mode, tuple[str, ...]] = {
    "mid_line": ("\n",),
    "whole_line": ("\n\n",),
    "generation": (),
}


@dataclass(frozen=True, slots=True)
class Params:
    max_tokens: int
    temperature: float
    mode: Mode
    stop: tuple[str, ...] = ()

    @property
    def generation(self) -> bool:
        return self.mode == "generation"

    def stops(self, *extra: str, limit: int | None = None) -> list[str]:
        """The mode's stop sequences, then `stop`, then `extra` (e.g. the model family's end
        tokens), without repeats; the first `limit` of them for APIs that cap the list."""
        found = list(dict.fromkeys((*MODE_STOPS[self.mode], *self.stop, *extra)))
        return found[:limit] if limit is not None else found


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: str = "length"


class Provider(ABC):
    """`name` is the provider id requests use (`model_provider`); `models` the model names it
    serves, the first being its default."""

    name: str
    models: tuple[str, ...]

    @property
    def default_model(self) -> str:
        return self.models[0]

    def markers(self, model: str) -> tuple[str, ...]:
        """Strings of the model's prompt format to scrub from user content."""
        return ()

    def reserved_tokens(self, model: str) -> int:
        """Prompt tokens taken by the format itself (markers, instructions)."""
        return 0

    @property
    def location(self) -> str | None:
        """Where the model is (a model server's base URL) for the gateway's own log lines."""
        return None

    @property
    def ready(self) -> bool:
        """False while the provider cannot serve yet (e.g. a model still loading)."""
        return True

    async def start(self) -> None:
        """Open pools / load models; called once when the gateway starts."""
        return None

    async def aclose(self) -> None:
        """Release pools and models."""
        return None

    @abstractmethod
    async def complete(self, prompt: Prompt, model: str, params: Params) -> Completion: ...

    @abstractmethod
    def stream(self, prompt: Prompt, model: str, params: Params) -> AsyncIterator[str]: ...
