"""Suite-wide rules: unique node ids, and the fuzzing tallies of pytest-xdist workers."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One node id per test. Under pytest 9.2 schemathesis gives every operation of a
    `schema.parametrize()` test the function's bare node id (its `[GET /path]` is only in the
    name); pytest-xdist schedules by node id and would run one operation of each and drop the
    rest, so the operation goes back into the id."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        original = getattr(item, "originalname", None)
        if counts[item.nodeid] > 1 and original and item.name.startswith(f"{original}["):
            item._id = item._id.with_params(item.name[len(original) + 1 : -1])  # type: ignore[attr-defined]
    duplicates = [nodeid for nodeid, n in Counter(i.nodeid for i in items).items() if n > 1]
    if duplicates:
        raise pytest.UsageError(f"tests share a node id: {duplicates}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its schemathesis tally to the controller, which prints the sum."""
    output = getattr(session.config, "workeroutput", None)
    fuzzing = sys.modules.get("support.fuzzing")
    if output is not None and fuzzing is not None:
        output["fuzz_tally"] = {k: dict(v) for k, v in fuzzing.TALLY.items()}
        fuzzing.TALLY.clear()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    tally = getattr(node, "workeroutput", {}).get("fuzz_tally")
    if tally:
        from support.fuzzing import TALLY

        for service, counts in tally.items():
            TALLY.setdefault(service, Counter()).update(counts)
