"""Capture what the JSON log handler would write, to check that secrets never reach it."""

from __future__ import annotations

import logging

from codesuggest.common import logs


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def capture_logs() -> Captured:
    """Configure the real JSON logging and add a handler with the same formatter."""
    logs.configure("DEBUG")
    root = logging.getLogger()
    handler = Captured()
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    return handler


def release(handler: Captured) -> None:
    logging.getLogger().removeHandler(handler)
