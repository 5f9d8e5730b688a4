"""`https://` upstreams over HTTP/2: a hypercorn server on loopback with a trustme certificate,
speaking OpenAI's streamed completions format; a cancelled call resets its stream only."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from codesuggest.gateway.prompts import Prompt
from codesuggest.gateway.providers import Params, ProviderUnreachable
from codesuggest.gateway.providers.openai import OpenAIProvider
from support.issuer import wait_until

PROMPT = Prompt(
    file_name="main.py",
    language="python",
    line_comment="#",
    prefix="def add(a, b):\n    ",
    suffix="\n",
    context=(),
)
PARAMS = Params(max_tokens=32, temperature=0.0, mode="whole_line")
MODEL = "codellama:7b-code"


class TlsModel:
    """OpenAI's `POST /v1/completions` streamed as SSE; `seen` holds each request's HTTP
    version and client port (one port per TCP connection). With `hang`, the answer stops after
    its first chunk until the client goes away, which sets `disconnected`; with `hold`, it
    waits for that before sending anything (a server still reading a long prompt)."""

    def __init__(self, certs: Path, alpn: list[str]) -> None:
        self.seen: list[tuple[str, int]] = []
        self.hang = False
        self.hold = False
        self.disconnected = threading.Event()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile = str(certs / "server.pem")
        config.keyfile = str(certs / "server.pem")
        config.alpn_protocols = alpn
        config.accesslog = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(config),), daemon=True
        )
        self._thread.start()
        wait_until(lambda: self._stop is not None, what="server started")

    async def _serve(self, config: Config) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(self.app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        assert scope["path"] == "/v1/completions"
        self.seen.append((scope["http_version"], scope["client"][1]))
        if self.hold:
            await self._until_disconnected(receive)
            return
        chunk = {"choices": [{"text": "return a + b", "finish_reason": None}]}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                "more_body": True,
            }
        )
        if self.hang:
            await self._until_disconnected(receive)
            return
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _until_disconnected(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(path / "server.pem")
    ca.cert_pem.write_to_path(path / "ca.pem")
    return path


@pytest.fixture
def trusted(certs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.pem"))
    return certs


@pytest.fixture
def h2_model(trusted: Path) -> Iterator[TlsModel]:
    server = TlsModel(trusted, ["h2", "http/1.1"])
    yield server
    server.stop()


@pytest.fixture
def h11_model(trusted: Path) -> Iterator[TlsModel]:
    server = TlsModel(trusted, ["http/1.1"])
    yield server
    server.stop()


def provider(server: TlsModel) -> OpenAIProvider:
    return OpenAIProvider(base_url=f"https://127.0.0.1:{server.port}/v1", models=(MODEL,))


async def cancel_once_received(model: OpenAIProvider, server: TlsModel, calls: int) -> None:
    """Start a completion, cancel it once the server has received it (its `calls`-th request),
    and require the server to learn that its client left."""
    task = asyncio.ensure_future(model.complete(PROMPT, MODEL, PARAMS))
    await asyncio.to_thread(wait_until, lambda: len(server.seen) >= calls, what="call started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(server.disconnected.wait, 10), "cancel did not reset"


async def served_on_one_connection(model: OpenAIProvider, server: TlsModel, calls: int) -> None:
    """One more completion is answered, and all `calls` went over HTTP/2 on one connection."""
    assert (await model.complete(PROMPT, MODEL, PARAMS)).text == "return a + b"
    await model.aclose()
    assert [version for version, _ in server.seen] == ["2"] * calls
    assert len({port for _, port in server.seen}) == 1, "a new connection was opened"


async def test_cancelled_calls_reset_their_stream_and_keep_the_connection(h2_model):
    model = provider(h2_model)
    assert (await model.complete(PROMPT, MODEL, PARAMS)).text == "return a + b"
    assert h2_model.seen[0][0] == "2"

    # The client leaves mid-stream: the server learns it, the connection stays.
    h2_model.hang = True
    async for _ in model.stream(PROMPT, MODEL, PARAMS):
        break
    assert await asyncio.to_thread(h2_model.disconnected.wait, 10), "stream was not reset"

    # The call is cancelled (the deadline passed) while waiting for the next chunk.
    h2_model.disconnected.clear()
    await cancel_once_received(model, h2_model, calls=3)

    h2_model.hang = False
    await served_on_one_connection(model, h2_model, calls=4)


async def test_a_call_cancelled_before_the_answer_s_head_resets_its_stream(h2_model):
    """httpcore forgets such a stream without a word to the server: it is reset here."""
    model = provider(h2_model)
    assert (await model.complete(PROMPT, MODEL, PARAMS)).text == "return a + b"
    h2_model.hold = True
    await cancel_once_received(model, h2_model, calls=2)
    h2_model.hold = False
    await served_on_one_connection(model, h2_model, calls=3)


async def test_https_server_without_http2_is_served_over_http11(h11_model):
    model = provider(h11_model)
    assert (await model.complete(PROMPT, MODEL, PARAMS)).text == "return a + b"
    h11_model.hang = True
    async for _ in model.stream(PROMPT, MODEL, PARAMS):
        break
    assert await asyncio.to_thread(h11_model.disconnected.wait, 10), "connection not closed"
    h11_model.hang = False
    assert (await model.complete(PROMPT, MODEL, PARAMS)).text == "return a + b"
    await model.aclose()
    assert [version for version, _ in h11_model.seen] == ["1.1"] * 3


async def test_untrusted_certificate_is_refused(certs, h2_model, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    model = provider(h2_model)
    with pytest.raises(ProviderUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        await model.complete(PROMPT, MODEL, PARAMS)
    await model.aclose()
    assert h2_model.seen == []
