"""Model servers that close kept-alive connections without saying so (no `Connection: close`),
as llama.cpp's server does after every streamed answer: each call must still be answered, sent
again on a new connection when the one it was handed turns out closed, and a server that
drops every call must not be asked without end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.providers import Params, ProviderUnavailable
from codesuggest.gateway.providers.openai import OpenAIProvider

MODEL = "stale-model"
PROMPT = Prompt("a.py", "python", "#", "def add(a, b):\n    return", "\n")
_CHUNK = b'data: {"choices":[{"text":" a + b","index":0,"finish_reason":"stop"}]}\n\n'
_DONE = b"data: [DONE]\n\n"


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Keep-Alive: timeout=5, max=100\r\n\r\n" + _chunked(_CHUNK, _DONE)
)


class ClosingServer:
    """Reads one request per connection, answers it (or, with `answer` off, not) and closes."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
            if self.answer:
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # a connection the client found closed: no request on it
        finally:
            writer.close()


async def _serve(answer: bool) -> AsyncIterator[tuple[ClosingServer, OpenAIProvider]]:
    model = ClosingServer(answer)
    server = await asyncio.start_server(model.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAIProvider(
        base_url=f"http://127.0.0.1:{port}/v1", models=(MODEL,), fim_template="none", timeout=10
    )
    try:
        yield model, provider
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def answering() -> AsyncIterator[tuple[ClosingServer, OpenAIProvider]]:
    async for pair in _serve(answer=True):
        yield pair


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[ClosingServer, OpenAIProvider]]:
    async for pair in _serve(answer=False):
        yield pair


async def test_every_call_is_answered_when_the_server_closes_after_each_answer(
    answering: tuple[ClosingServer, OpenAIProvider],
) -> None:
    model, provider = answering
    texts = [(await provider.complete(PROMPT, MODEL, Params(8, 0.0, "mid_line"))).text
             for _ in range(10)]  # fmt: skip
    assert texts == [" a + b"] * 10
    assert model.requests == 10  # a request sent on a closed connection never reached it


async def test_concurrent_calls_are_answered_when_the_server_closes_after_each_answer(
    answering: tuple[ClosingServer, OpenAIProvider],
) -> None:
    """Eight callers, each sending its next call as soon as its last is answered: the pool
    holds several connections the server has closed at once."""
    model, provider = answering

    async def caller() -> list[str]:
        return [(await provider.complete(PROMPT, MODEL, Params(8, 0.0, "mid_line"))).text
                for _ in range(5)]  # fmt: skip

    assert await asyncio.gather(*(caller() for _ in range(8))) == [[" a + b"] * 5] * 8
    assert model.requests == 40


async def test_a_server_that_drops_every_call_is_asked_four_times(
    dropping: tuple[ClosingServer, OpenAIProvider],
) -> None:
    model, provider = dropping
    with pytest.raises(ProviderUnavailable, match="ServerDisconnectedError"):
        await provider.complete(PROMPT, MODEL, Params(8, 0.0, "mid_line"))
    assert model.requests == 4
