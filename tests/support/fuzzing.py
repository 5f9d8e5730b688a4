"""What every schemathesis suite here shares: both generation modes, a bounded, deterministic
number of examples per operation, the checks (no 5xx; statuses, media types and bodies as
declared; invalid input refused with a 4xx), and a tally of requests, 5xx and violations per
service (printed at the end of the run, summed over pytest-xdist workers)."""

from __future__ import annotations

import atexit
import json
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 12
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TALLY: dict[str, Counter[str]] = {}


def load(document: dict[str, Any]) -> Any:
    """The schema of an app's OpenAPI `document` (loaded at import: schemathesis's lazy fixture
    loader does not work with this pytest; each suite also checks the served document is it)."""
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
    )
    return schema


def call_and_check(service: str, case: Any, base_url: str, headers: dict[str, str]) -> None:
    tally = TALLY.setdefault(service, Counter())
    response = case.call(base_url=base_url, headers=headers, timeout=30)
    tally["requests"] += 1
    if response.status_code >= 500:
        tally["5xx"] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception:
        tally["violations"] += 1
        raise


def call_graphql(service: str, case: Any, url: str, headers: dict[str, str]) -> None:
    """A GraphQL case: refusals are GraphQL errors by contract (schemathesis counts any error
    as a server error), so the check is no 5xx and no masked crash among the errors."""
    tally = TALLY.setdefault(service, Counter())
    response = case.call(base_url=url, headers=headers, timeout=30)
    tally["requests"] += 1
    if response.status_code >= 500:
        tally["5xx"] += 1
    body = response.json()
    crashes = [
        e
        for e in body.get("errors") or []
        if e.get("extensions", {}).get("code") == "INTERNAL_SERVER_ERROR"
    ]
    if response.status_code >= 500 or crashes or not ({"data", "errors"} & set(body)):
        tally["violations"] += 1
    assert response.status_code < 500, response.text
    assert not crashes, crashes
    assert {"data", "errors"} & set(body), body


@atexit.register
def _report() -> None:
    if TALLY:
        print("schemathesis figures:", json.dumps({k: dict(v) for k, v in TALLY.items()}))
