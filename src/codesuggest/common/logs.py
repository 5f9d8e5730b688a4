"""structlog JSON logs with the request id carried across hops, and secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uuid_utils import uuid4

REQUEST_ID_HEADER = "x-request-id"
# A key is secret when one of its `_`/`-`-separated words is (`instance_token`, `pat`), not when
# it merely contains the letters (`path`, `patch`); camelCase words count (`instanceToken`).
_SECRET_KEYS = re.compile(
    r"(?:^|[_-])(?:tokens?|secrets?|password|authorization|private|pat|"
    r"license_?key|licence_?key)(?:$|[_-])",
    re.I,
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_JWT_LIKE = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and _SECRET_KEYS.search(_CAMEL_HUMP.sub("_", key)):
            event[key] = "[redacted]"
        elif isinstance(event[key], str):
            event[key] = _JWT_LIKE.sub("[redacted-jwt]", event[key])
    return event


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr, for structlog and stdlib loggers alike."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def bind_request_id(scope: Scope) -> str:
    """The request's `X-Request-ID` (or a new one), stored in `scope["state"]` and bound to the
    log context; the caller unbinds it when the request ends."""
    request_id = ""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Passed on to other parts in a header: only visible ASCII, else a new one.
            candidate = value.decode("latin-1")[:128]
            request_id = candidate if _REQUEST_ID.fullmatch(candidate) else ""
            break
    if not request_id:
        request_id = uuid4().hex
    scope.setdefault("state", {})["request_id"] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


class RequestIdMiddleware:
    """Takes `X-Request-ID` from the request (or makes one), binds it to the log context and
    echoes it on the response. Pure ASGI, so it costs microseconds and keeps streams intact."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = bind_request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
