"""The portal's OpenAPI contract (its REST parts and the HTTP front of `/graphql`), checked by
the schemathesis suite (tests/portal/test_fuzz.py)."""

from __future__ import annotations

from typing import Any

from codesuggest.common.graphql_http import GRAPHQL_ANSWER, GRAPHQL_REQUEST
from codesuggest.common.openapi import ANY_OBJECT, answers, json_body, shape

ERRORS = shape(errors={"type": "array", "items": ANY_OBJECT})
OPENAPI: dict[str, dict[str, Any]] = {
    "POST /graphql": {
        **json_body(GRAPHQL_REQUEST),
        "responses": answers(
            {
                200: ("`data` and/or `errors` (refusals are GraphQL errors)", GRAPHQL_ANSWER),
                400: ("Not a GraphQL request, or not strict JSON", ERRORS),
                413: ("Body over the cap", ERRORS),
                415: ("Not application/json", ERRORS),
            }
        ),
    },
    "GET /.well-known/openid-configuration": {
        "responses": answers({200: ("OIDC discovery", shape(issuer={"type": "string"}))})
    },
    "GET /oauth/discovery/keys": {
        "responses": answers({200: ("The JWKS", shape(keys={"type": "array"}))})
    },
}
