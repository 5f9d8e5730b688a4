"""Strict JSON for request bodies, shared by every part: UTF-8 only, no `NaN`/`Infinity` (nor a
number too large for a float, like `1e999`), no integer of more than 4300 digits, nesting at most
`MAX_DEPTH` deep. A body that breaks a rule raises `BadJson`, whose message names the rule, so
each part answers a clear 400/422 instead of failing later on a value it cannot store or encode.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

MAX_DEPTH = 64

M = TypeVar("M", bound=BaseModel)


class BadJson(ValueError):
    """The body is not strict JSON; `str(exc)` says why."""


def _reject_constant(name: str) -> Any:
    raise BadJson(f"the request body contains {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"the number {text[:20]} is too large")
    return value


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw` strictly (see the module docstring)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson("the request body is not valid UTF-8") from None
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except BadJson:
        raise
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as exc:  # JSONDecodeError, or an integer beyond Python's digit limit
        raise BadJson(f"the request body is not valid JSON: {exc}") from None
    if raw.count("[") + raw.count("{") > max_depth and _depth(value) > max_depth:
        raise _too_deep(max_depth)
    return value


def parse_model(model: type[M], raw: bytes) -> M:
    """`model.model_validate_json(raw)` (fast) with the strict rules: `BadJson` when the body
    is not strict JSON, pydantic's `ValidationError` when it is JSON of the wrong shape. The
    model should set `allow_inf_nan=False` so non-finite numbers in its own fields are refused."""
    try:
        value = model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            loads(raw)  # names the problem
            raise BadJson("the request body is not valid JSON") from None
        raise
    if b"NaN" in raw or b"Infinity" in raw:
        loads(raw)  # a literal in a field the model ignores; a string containing it is fine
    return value


def json_safe(value: Any) -> bool:
    """Whether `value` can be echoed back in a JSON answer (validation errors echo inputs)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _too_deep(max_depth: int) -> BadJson:
    return BadJson(f"the request body is nested more than {max_depth} levels deep")


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
