"""Counts of shown, accepted, rejected and failed suggestions, folded into the `telemetry`
field of the next completion request (docs/contracts.md section 6; `rejects` is ours)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_ITEMS = 10  # the gateway refuses more than 10 telemetry items


@dataclass
class _Counts:
    requests: int = 0
    accepts: int = 0
    rejects: int = 0
    errors: int = 0


class Telemetry:
    """Per (model_engine, model_name, lang) counters since the last request that carried
    them. `drain()` hands them over; `restore()` puts them back if that request failed."""

    def __init__(self) -> None:
        self._counts: OrderedDict[tuple[str, str, str], _Counts] = OrderedDict()

    def _slot(self, engine: str, name: str, lang: str) -> _Counts:
        key = (engine, name, lang)
        if key not in self._counts:
            self._counts[key] = _Counts()
        return self._counts[key]

    def request(self, engine: str, name: str, lang: str) -> None:
        self._slot(engine, name, lang).requests += 1

    def accept(self, engine: str, name: str, lang: str) -> None:
        self._slot(engine, name, lang).accepts += 1

    def reject(self, engine: str, name: str, lang: str) -> None:
        self._slot(engine, name, lang).rejects += 1

    def error(self, engine: str, name: str, lang: str) -> None:
        self._slot(engine, name, lang).errors += 1

    def drain(self) -> list[dict[str, object]]:
        """Up to ten items, oldest first; the rest stays for the next request."""
        items: list[dict[str, object]] = []
        while self._counts and len(items) < MAX_ITEMS:
            (engine, name, lang), counts = self._counts.popitem(last=False)
            items.append(
                {
                    "model_engine": engine,
                    "model_name": name,
                    "lang": lang,
                    "requests": counts.requests,
                    "accepts": counts.accepts,
                    "rejects": counts.rejects,
                    "errors": counts.errors,
                }
            )
        return items

    def restore(self, items: list[dict[str, object]]) -> None:
        for item in items:
            slot = self._slot(str(item["model_engine"]), str(item["model_name"]), str(item["lang"]))
            slot.requests += int(item["requests"])  # type: ignore[call-overload]
            slot.accepts += int(item["accepts"])  # type: ignore[call-overload]
            slot.rejects += int(item["rejects"])  # type: ignore[call-overload]
            slot.errors += int(item["errors"])  # type: ignore[call-overload]
