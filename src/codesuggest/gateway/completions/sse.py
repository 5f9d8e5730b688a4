"""Server-sent event frames (https://html.spec.whatwg.org/multipage/server-sent-events.html).

A completion stream is a series of `data: {"text": "<chunk>"}` frames (the default `message`
event), then exactly one final frame: `event: done` with the whole post-processed suggestion,
or `event: error` with `{"detail": ...}` when the model failed after the stream had started.
"""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: Any, event: str | None = None) -> bytes:
    """One SSE frame; `data` is sent as compact JSON (which never holds a raw line break)."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def chunk(text: str) -> bytes:
    return frame({"text": text})
