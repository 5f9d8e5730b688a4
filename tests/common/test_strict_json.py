"""common.strict_json: every rule refused with a message that names it; valid JSON unchanged."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from codesuggest.common.strict_json import MAX_DEPTH, BadJson, json_safe, loads, parse_model


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"a": "\xff"}', "UTF-8"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"a": 1e999}', "too large"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b"[" * 3000 + b"]" * 3000, "nested more than"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested more than"),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_loads_refuses_and_names_the_problem(raw: bytes, named: str) -> None:
    with pytest.raises(BadJson, match=named):
        loads(raw)


def test_loads_accepts_valid_json_up_to_the_depth_limit() -> None:
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(nested) == loads(nested.encode())
    assert loads(b'{"s": "NaN and Infinity in a string", "n": 1.5, "b": "[[[["}')["n"] == 1.5
    assert loads('{"wide": [' + ",".join(["[]"] * 500) + "]}")["wide"][0] == []


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    count: int = 0


def test_parse_model_keeps_shape_errors_as_validation_errors() -> None:
    with pytest.raises(ValidationError):
        parse_model(Body, b'{"count": "many"}')
    with pytest.raises(ValidationError):
        parse_model(Body, b'{"count": 1e999}')


@pytest.mark.parametrize(
    "raw", [b'{"count": 1, "x": NaN}', b'{"count": "\xff"}', b"[" * 300 + b"]" * 300, b"{"]
)
def test_parse_model_refuses_what_is_not_strict_json(raw: bytes) -> None:
    with pytest.raises(BadJson):
        parse_model(Body, raw)


def test_parse_model_allows_the_words_inside_strings() -> None:
    assert parse_model(Body, b'{"count": 2, "note": "NaN Infinity"}').count == 2


def test_json_safe() -> None:
    assert json_safe({"a": [1, "x", None]})
    assert not json_safe(float("nan"))
    assert not json_safe(b"\xff")
