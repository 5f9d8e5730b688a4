"""The portal fuzzed with schemathesis: its OpenAPI document (REST parts and the HTTP front of
`/graphql`, positive and negative modes) and its GraphQL schema (queries generated from the
schema, sent as the instance's sync sends them): no 5xx, every answer as declared."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from graphql import get_introspection_query

from codesuggest.portal.app import create_app
from codesuggest.portal.graphql_schema import build_schema
from codesuggest.portal.settings import PortalSettings
from portal.helpers import Portal, instance_headers, start_portal
from support.fuzzing import FUZZ_SETTINGS, call_and_check, call_graphql, load

_tmp = Path(tempfile.mkdtemp())
DOCUMENT = create_app(
    PortalSettings(data_dir=_tmp, database_url=f"sqlite:///{_tmp / 'portal.db'}")
).openapi()
schema = load(DOCUMENT)
_introspection = build_schema(introspection=True).execute_sync(get_introspection_query())
assert _introspection.data is not None
graphql_schema = schemathesis.graphql.from_dict(_introspection.data)
graphql_schema.config.generation.update(max_examples=40)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """One portal (SQLite) for both suites: the fuzz is about the HTTP and GraphQL front."""
    tmp = tmp_path_factory.mktemp("fuzz-portal")
    running, server = start_portal(f"sqlite:///{tmp / 'portal.db'}", tmp, access_per_hour=100_000)
    yield running
    running.http.close()
    server.stop()


def test_the_served_document_is_the_one_fuzzed(portal: Portal) -> None:
    assert httpx.get(portal.url + "/openapi.json").json() == DOCUMENT


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_portal_answers_as_documented(case, portal: Portal) -> None:  # type: ignore[no-untyped-def]
    call_and_check("portal", case, portal.url, instance_headers())


@graphql_schema.parametrize()
@FUZZ_SETTINGS
def test_graphql_queries_from_the_schema_never_crash_the_portal(case, portal: Portal) -> None:  # type: ignore[no-untyped-def]
    call_graphql("portal graphql", case, portal.url + "/graphql", instance_headers())
