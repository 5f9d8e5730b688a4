"""The instance's OpenAPI document fuzzed with schemathesis (positive and negative modes) against
a real instance, portal and gateway with real credentials (a PAT with a seat, an admin PAT, a
gateway-signed usage token): no 5xx, and every answer as the document declares."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from codesuggest.gateway.usage.recorder import SignedToken
from codesuggest.instance.app import create_app
from codesuggest.instance.settings import InstanceSettings
from codesuggest.tokens import SystemClock
from instance.harness import Stack, stacks
from support.fuzzing import FUZZ_SETTINGS, call_and_check, load

_tmp = Path(tempfile.mkdtemp())
DOCUMENT = create_app(
    InstanceSettings(data_dir=_tmp, secret="fuzz-document-secret-0123456789", sync_enabled=False)
).openapi()
schema = load(DOCUMENT)
stack = stacks("fuzz")
ONE_STACK = pytest.mark.stacks(realm="self-managed", backend="sqlite")
ADMIN_ROUTES = {"/api/v4/application/settings", "/api/v4/usage/report"}
# The admin REST API (users, tokens, seats) can block, delete and revoke: fuzzed last, each case
# with an administrator of its own, so it cannot take the other cases' credentials away.
ADMIN_REST = r"^/api/v4/(users|personal_access_tokens|add_on_purchases)"


@pytest.fixture(scope="module")
def credentials(stack: Stack) -> dict[str, dict[str, str]]:
    signer = stack.gateway_app.state.ctx.signer  # type: ignore[attr-defined]
    usage_token = SignedToken(signer, stack.settings.url, SystemClock())()
    return {
        "user": {"PRIVATE-TOKEN": stack.user()},
        "admin": {"PRIVATE-TOKEN": stack.user(admin_=True)},
        "usage": {"Authorization": f"Bearer {usage_token}"},
    }


@ONE_STACK
def test_the_served_document_is_the_one_fuzzed(stack: Stack) -> None:
    served = httpx.get(stack.instance.url + "/openapi.json").json()
    assert served["paths"] == DOCUMENT["paths"]


@ONE_STACK
@schema.exclude(path_regex=ADMIN_REST).parametrize()
@FUZZ_SETTINGS
def test_the_instance_answers_as_documented(case, stack: Stack, credentials) -> None:  # type: ignore[no-untyped-def]
    path = case.operation.path
    if path in ADMIN_ROUTES:
        headers = credentials["admin"]
    elif path == "/api/v4/usage/events":
        headers = credentials["usage"]
    else:
        headers = credentials["user"]
    stack.ctx.settings.direct_access_per_minute = 10_000  # the limit is tested elsewhere
    stack.ctx.settings.completions_per_minute = 10_000
    call_and_check("instance", case, stack.instance.url, headers)


@ONE_STACK
@schema.include(path_regex=ADMIN_REST).parametrize()
@FUZZ_SETTINGS
def test_the_admin_api_answers_as_documented(case, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    headers = {"PRIVATE-TOKEN": stack.user(seat=False, admin_=True)}
    call_and_check("instance", case, stack.instance.url, headers)
