"""Log redaction: secrets by key name word (not letters inside words), JWTs anywhere."""

from __future__ import annotations

from codesuggest.common.logs import _redact


def test_secret_keys_are_redacted_and_ordinary_words_are_not() -> None:
    event = {
        "event": "unhandled error",
        "path": "/api/v4/code_suggestions/direct_access",
        "patch": "1",
        "dispatcher": "x",
        "pat": "glpat-secret",
        "instance_token": "abc",
        "privateToken": "def",
        "license_key": "lk",
        "Authorization": "Bearer x",
        "tokens": "t",
    }
    out = _redact(None, "info", dict(event))
    assert out["path"] == event["path"]
    assert out["patch"] == "1" and out["dispatcher"] == "x"
    for key in ("pat", "instance_token", "privateToken", "license_key", "Authorization", "tokens"):
        assert out[key] == "[redacted]", key


def test_a_jwt_inside_any_value_is_redacted() -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    out = _redact(None, "info", {"event": "x", "detail": f"refused {jwt_like} here"})
    assert jwt_like not in out["detail"]
