"""A stand-in for a gateway that accepts connections but never answers in time."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI

from support.servers import ServerThread


class SlowGateway:
    """Holds every mint request until `release()` (so stopping it does not wait for them)."""

    def __init__(self, path: str = "/auth/v1/code/user_access_token") -> None:
        self.released = threading.Event()
        app = FastAPI()

        @app.post(path)
        async def held() -> dict:
            while not self.released.is_set():  # noqa: ASYNC110 - set from another thread
                await asyncio.sleep(0.02)
            return {"token": "late", "expires_at": 0}

        self.server = ServerThread(app).start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.released.set()
        self.server.stop()
