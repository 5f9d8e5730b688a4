"""Per-request stage timings and the `Server-Timing` header rendered from them.

The auth dependency stores `request.state.timings["auth"]` (seconds); the completion routes add
`parse`, `prompt`, `model`, `post`, `answer` (usage event made durable while the answer is
serialized) and `total`, which the stages add up to but for the framework's few microseconds
between them. The header gives each in milliseconds.
"""

from __future__ import annotations

import time

from fastapi import Request

ORDER = ("auth", "parse", "prompt", "model", "post", "answer", "total")


def timings_of(request: Request) -> dict[str, float]:
    timings = getattr(request.state, "timings", None)
    if timings is None:
        timings = request.state.timings = {}
    return timings


class measure:  # lower case: used like a function, `with measure(timings, "parse"):`
    """Adds the seconds its block takes to `timings[stage]` (a class: cheaper than a generator
    context manager, and this runs several times per request)."""

    __slots__ = ("stage", "started", "timings")

    def __init__(self, timings: dict[str, float], stage: str) -> None:
        self.timings = timings
        self.stage = stage
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        timings, stage = self.timings, self.stage
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - self.started


def server_timing(timings: dict[str, float]) -> str:
    """`auth;dur=0.120, prompt;dur=0.031, ...` in the order of ORDER, then any other stage."""
    names = [n for n in ORDER if n in timings] + sorted(set(timings) - set(ORDER))
    return ", ".join(f"{name};dur={timings[name] * 1000:.3f}" for name in names)


def milliseconds(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(value * 1000, 3) for name, value in timings.items()}
