"""Where each part listens when nothing says otherwise, and so where the others look for it.

The same ports as `codesuggest up` with its default port base (docs/running.md): a portal, an
instance and a gateway each started with a bare `codesuggest <part> serve` find one another.
"""

from __future__ import annotations

HOST = "127.0.0.1"
PORTAL = 8180
INSTANCE = 8181
GATEWAY = 8183


def local_url(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}"
