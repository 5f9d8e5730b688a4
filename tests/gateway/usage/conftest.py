"""A loopback usage collector: the `http` sink's peer, idempotent by `event_id`."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from support.servers import ServerThread


class Collector:
    """Stores events by `event_id`; `fail_next` answers that many requests with 503."""

    def __init__(self) -> None:
        self.events: dict[str, dict] = {}
        self.received = 0  # events received, duplicates included
        self.requests = 0
        self.fail_next = 0
        self.authorizations: list[str | None] = []
        self.lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/events")(self._post)

    async def _post(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self.lock:
            self.requests += 1
            self.authorizations.append(request.headers.get("authorization"))
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"error": "unavailable"}, status_code=503)
            if any(event.get("language") == "poison" for event in body["events"]):
                return JSONResponse({"error": "events.language is invalid"}, status_code=400)
            for event in body["events"]:
                self.received += 1
                self.events.setdefault(event["event_id"], event)
        return JSONResponse({"accepted": len(body["events"])})


@pytest.fixture(scope="module")
def collector():
    collector = Collector()
    server = ServerThread(collector.app).start()
    collector.url = server.url + "/events"
    yield collector
    server.stop()


@pytest.fixture
def fresh_collector(collector):
    with collector.lock:
        collector.events.clear()
        collector.received = collector.requests = collector.fail_next = 0
        collector.authorizations.clear()
    return collector
