"""One retry of a completion when the connection dies or the edge answers 502/503 before any
byte of the answer: against real loopback servers (a raw TCP server that drops connections,
and the contract fakes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from client.test_behavior import REQUEST, make_client
from codesuggest.client.details import ConnectionDetails
from codesuggest.client.transports import PathFailed, post_direct

ANSWER = {"choices": [{"text": "return a + b"}], "model": {"engine": "e", "name": "n"}}


class DroppingServer:
    """Reads each request in full, then closes the first `drops` connections without a byte of
    answer and answers the rest with 200 JSON."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                if self.requests <= self.drops:
                    return  # the replica died: no status line, nothing
                body = json.dumps(ANSWER).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def dropping() -> AsyncIterator[DroppingServer]:
    server = DroppingServer(drops=1)
    yield server
    await server.stop()


def details(base_url: str) -> ConnectionDetails:
    return ConnectionDetails(
        base_url=base_url,
        token="user-token",
        expires_at=2**40,
        headers={"X-Gitlab-Global-User-Id": "u1"},
        model_details=None,
        clock_offset=0.0,
        refresh_at=2**40,
    )


async def test_a_connection_dropped_before_the_answer_is_retried_on_another(
    dropping: DroppingServer,
) -> None:
    url = await dropping.start()
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await post_direct(http, details(url), {"prompt_version": 1}, "1.0")
    assert reply.body == ANSWER
    assert (dropping.requests, dropping.connections) == (2, 2)


async def test_only_one_retry(dropping: DroppingServer) -> None:
    dropping.drops = 2
    url = await dropping.start()
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(PathFailed, match="retried once"):
            await post_direct(http, details(url), {"prompt_version": 1}, "1.0")
    assert dropping.requests == 2


@pytest.mark.parametrize("status", [502, 503])
async def test_a_502_or_503_is_sent_again_once_and_the_user_sees_none(stack, status: int) -> None:
    client, _clock, statuses = make_client(stack)
    try:
        await client.complete(REQUEST)
        before = len(stack.world.gateway_requests)
        stack.world.gateway_statuses = [status]
        suggestion = await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert (suggestion.path, suggestion.text) == ("direct", "return a + b")
    assert len(stack.world.gateway_requests) - before == 2
    assert client.breaker.state == "closed"
    assert [s for s, _ in statuses] == ["direct"]


async def test_other_errors_are_not_retried(stack) -> None:
    client, _clock, _ = make_client(stack)
    try:
        await client.complete(REQUEST)
        before = len(stack.world.gateway_requests)
        stack.world.gateway_statuses = [500]
        suggestion = await client.complete(REQUEST)
    finally:
        await client.aclose()
    assert suggestion.path == "monolith"
    assert len(stack.world.gateway_requests) - before == 1
