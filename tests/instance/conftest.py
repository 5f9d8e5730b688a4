"""Instance test fixtures: a full stack per (database, realm), started once per module."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from instance.harness import Stack, database_url, start_stack

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", "self-managed"),
        ("sqlite", "saas"),
        pytest.param(("postgres", "self-managed"), marks=pytest.mark.postgres),
        pytest.param(("postgres", "saas"), marks=pytest.mark.postgres),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    backend, realm = request.param
    tmp = tmp_path_factory.mktemp(f"stack-{backend}-{realm}")
    with database_url(backend, tmp) as url:
        stack = start_stack(tmp, url, realm, backend)
        try:
            yield stack
        finally:
            stack.close()


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
