"""Suite-wide collection rules."""

from __future__ import annotations

from collections import Counter

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
