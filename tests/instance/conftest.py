"""Instance test fixtures: a full stack per (database, realm), started once per module."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from instance.harness import stacks

stack = stacks("stack")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.stacks(realm=..., backend=...)` runs a test only on the matching stacks;
    the other combinations are deselected (they do not apply), not skipped."""
    kept, dropped = [], []
    for item in items:
        mark = item.get_closest_marker("stacks")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if mark is None or "stack" not in params:
            kept.append(item)
            continue
        backend, realm = params["stack"]
        wanted = mark.kwargs
        matches = wanted.get("realm", realm) == realm and wanted.get("backend", backend) == backend
        (kept if matches else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _real_time_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests move the instance clock; the gateway runs on real time, so put it back."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").clock.set(time.time())
