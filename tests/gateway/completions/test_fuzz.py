"""The gateway's OpenAPI document fuzzed with schemathesis (positive and negative modes) against
the real gateway with real tokens: no 5xx, and every answer as the document declares."""

from __future__ import annotations

import tempfile

import httpx

from codesuggest.gateway.app import create_app
from codesuggest.gateway.settings import GatewaySettings
from gateway.completions.routes_env import Env
from support.fuzzing import FUZZ_SETTINGS, call_and_check, load

DOCUMENT = create_app(GatewaySettings(data_dir=tempfile.mkdtemp())).openapi()
schema = load(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(env: Env) -> None:
    assert httpx.get(env.gateway.url + "/openapi.json").json() == DOCUMENT


@schema.parametrize()
@FUZZ_SETTINGS
def test_the_gateway_answers_as_documented(case, env: Env) -> None:  # type: ignore[no-untyped-def]
    path = case.operation.path
    if path == "/v1/code/user_access_token":
        headers = env.instance_headers()  # the generated X-Gitlab-Global-User-Id is kept
    elif path == "/v2/code/generations":
        headers = env.instance_headers() | {"X-Gitlab-Global-User-Id": "fuzz-user"}
    else:
        headers = env.user_headers()
    call_and_check("gateway", case, env.gateway.url, headers)
