"""What the gateway answers when its model server cannot be reached, shared with the client
that explains it to the user; and how a model server's URL may appear in a log line."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MODEL_UNREACHABLE = "Inference failed: the gateway's model server is unreachable"
"""The 503 `detail`: clients learn the cause, never the gateway's internal URLs."""
MODEL_RETRY_AFTER = "5"


def shown_url(url: str) -> str:
    """`url` without user, password or query, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
