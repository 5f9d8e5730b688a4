"""Circuit breaker for the direct path: open for 1 s after a failure, x5 on each repeated
failure, at most 10 minutes; when the time is up one probe goes through (half-open)."""

from __future__ import annotations

from codesuggest.client.clock import Clock


class CircuitBreaker:
    def __init__(
        self,
        clock: Clock,
        first_open: float = 1.0,
        factor: float = 5.0,
        max_open: float = 600.0,
    ) -> None:
        self._clock = clock
        self._first_open = first_open
        self._factor = factor
        self._max_open = max_open
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        if self._failures == 0:
            return "closed"
        if self._clock.now() < self._open_until:
            return "open"
        return "half-open"

    @property
    def open_for(self) -> float:
        """How long the breaker opened for on the last failure (0 when closed)."""
        if self._failures == 0:
            return 0.0
        return min(self._first_open * self._factor ** (self._failures - 1), self._max_open)

    def allow(self) -> bool:
        """May a request take the direct path now? In half-open only one probe is let
        through until it reports back."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        self._open_until = self._clock.now() + self.open_for

    def release_probe(self) -> None:
        """The probe ended without a verdict on the path (e.g. it was cancelled)."""
        self._probing = False
