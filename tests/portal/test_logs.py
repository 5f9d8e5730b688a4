"""Neither the license key nor the token ever reaches the logs, even at DEBUG."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from codesuggest.common import logs
from portal.helpers import Portal


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """Production log configuration at DEBUG, written to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    logs.configure("DEBUG")
    buffer = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


def test_access_call_logs_no_secrets(portal: Portal, debug_logs: io.StringIO) -> None:
    created = portal.admin.create_license()
    portal.admin.add_addon(created.id)
    body = portal.access(created.key).json()
    token = body["data"]["cloudConnectorAccess"]["serviceToken"]["token"]
    wrong = created.key[:-1] + ("y" if created.key.endswith("x") else "x")  # never the key itself
    refused = portal.access(wrong).json()
    assert refused["errors"][0]["message"] == "License key not found"

    output = debug_logs.getvalue()
    assert "cloud connector access granted" in output  # the logs were captured
    assert "LICENSE_NOT_FOUND" in output
    assert created.key not in output
    assert created.key[:-1] not in output
    assert token not in output
    for segment in token.split("."):
        assert segment not in output
