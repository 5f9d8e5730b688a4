"""A real portal on loopback per test module, over SQLite and over PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.helpers import Portal, start_portal
from support.databases import postgres_database


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('portal-db') / 'portal.db'}"
    else:
        with postgres_database("portal_test") as url:
            yield url


@pytest.fixture(scope="module")
def portal(database_url: str, tmp_path_factory) -> Iterator[Portal]:
    portal, server = start_portal(database_url, tmp_path_factory.mktemp("portal-data"))
    try:
        yield portal
    finally:
        portal.http.close()
        server.stop()
