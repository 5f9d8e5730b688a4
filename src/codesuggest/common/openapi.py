"""Honest OpenAPI documents for routes that parse their raw body (for speed, or because a body
is passed on unchanged): the body's schema through `openapi_extra`, and every status a route
answers with its shape, so a client generator or a fuzzer sees the whole contract.

`json_body(Model)` is a route's `openapi_extra`; `answers({401: ERROR, ...})` its `responses`;
`publish_models(app, Model, ...)` adds the models (and the models they use) to the document's
`components.schemas`, where the `$ref`s of both point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REF = "#/components/schemas/{model}"


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def json_body(model: type[BaseModel] | dict[str, Any], required: bool = True) -> dict[str, Any]:
    schema = ref(model) if isinstance(model, type) else model
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


def shape(**properties: dict[str, Any]) -> dict[str, Any]:
    """An object with these required properties (and possibly others)."""
    return {"type": "object", "properties": properties, "required": list(properties)}


STRING = {"type": "string"}
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def answers(
    table: Mapping[int, tuple[str, Mapping[str, Any] | None]],
    media_types: Mapping[int, dict[str, dict[str, Any]]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses`: status -> (description, JSON schema or None for no body); a status
    in `media_types` gets those media types (e.g. JSON and `text/event-stream`) instead."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, (description, schema) in table.items():
        entry: dict[str, Any] = {"description": description}
        if media_types and status in media_types:
            entry["content"] = media_types[status]
        elif schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        out[status] = entry
    return out


def publish_models(app: FastAPI, *models: type[BaseModel]) -> None:
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = original()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template=REF)
            for name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas.setdefault(model.__name__, schema)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def declare(app: FastAPI, table: dict[str, dict[str, Any]]) -> None:
    """Merge `table` ("METHOD /path" -> `requestBody`, `responses` and `parameter_schemas`, the
    schema of a parameter by name where the generated one says less than what is accepted) into
    the operations of
    the app's document, for routes whose modules parse raw bodies. Every documented operation
    must be in the table: a route added without its contract fails here, at the first call."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = original()
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                key = f"{method.upper()} {path}"
                if key not in table:
                    raise KeyError(f"{key} has no declared contract (common.openapi.declare)")
                extra = table[key]
                if "requestBody" in extra:
                    operation["requestBody"] = extra["requestBody"]
                for parameter in operation.get("parameters", []):
                    if parameter["name"] in extra.get("parameter_schemas", {}):
                        parameter["schema"] = extra["parameter_schemas"][parameter["name"]]
                generated = operation.setdefault("responses", {})
                for status, answer in extra.get("responses", {}).items():
                    generated[str(status)] = answer
        return document

    app.openapi = openapi  # type: ignore[method-assign]
