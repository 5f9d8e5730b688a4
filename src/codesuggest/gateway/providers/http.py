"""The HTTP providers' transport: one pooled client each, upstream failures mapped to ours.

The model call is the gateway's hot path. A plain `http://` upstream (a model server on the
same host or LAN) goes through aiohttp, whose HTTP/1.1 client costs about half of httpx's per
call (headers and body in one send, no pool scan per request); there a call that is cancelled
(the client left) or times out closes its connection, which is how a model server learns to
stop generating. An `https://` upstream goes through httpx with HTTP/2 offered by ALPN (HTTP/1.1
when the server declines): over HTTP/2 an abandoned call resets its stream (RST_STREAM), the
server stops, and the connection stays open for the next call. Timeouts: `connect` (at most
5 s) and `timeout` between two reads, so a long stream lives as long as chunks keep coming (the
completion service bounds the whole call).
"""

from __future__ import annotations

import contextlib
import json
import math
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import h2.errors
import h2.exceptions
import httpx
import pydantic_core

from codesuggest.gateway.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""

    def json(self) -> Any:
        return json.loads(self.data)


class Upstream:
    """A keep-alive connection pool to one model API (`base_url`), sending `headers` on every
    call: aiohttp for `http://`, httpx with HTTP/2 for `https://` (see the module's docstring).
    Made in `__init__` without a loop; the client opens on the first call. TLS certificates
    are checked against the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` replace it)."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout: float, max_connections: int
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=min(timeout, 5.0), sock_read=timeout
        )
        self.max_connections = max_connections
        self.http2 = self.base_url.startswith("https://")
        self._session: aiohttp.ClientSession | None = None
        self._client: httpx.AsyncClient | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Every call sends JSON, encoded here (`_post`) rather than by a payload object.
                headers={**self.headers, "Content-Type": "application/json"},
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                raise_for_status=False,
                auto_decompress=True,
            )
        return self._session

    def _open_http2(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                http2=True,
                verify=ssl.create_default_context(),
                headers={**self.headers, "Content-Type": "application/json"},
                timeout=httpx.Timeout(self.timeout.sock_read, connect=self.timeout.connect),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                ),
                trust_env=False,
            )
        return self._client

    async def post_json(self, path: str, body: Any) -> Any:
        """POST `body` as JSON to `path` (relative to the base URL); the decoded JSON answer.
        Raises ProviderError (see `upstream_errors`)."""
        with upstream_errors():
            if self.http2:
                async with self._stream_http2(path, body) as answer:
                    data = await answer.aread()
                    check_status(answer.status_code, answer.headers, data)
                    return json.loads(data)
            async with await self._post(path, body) as response:
                data = await response.read()
                check_status(response.status, response.headers, data)
                return json.loads(data)

    @asynccontextmanager
    async def stream(self, path: str, body: Any) -> AsyncIterator[UpstreamStream]:
        """POST `body` as JSON and read the answer as it arrives (a non-2xx answer raises).
        Leaving the block early, or being cancelled, closes the connection (over HTTP/2: the
        stream)."""
        with upstream_errors():
            if self.http2:
                async with self._stream_http2(path, body) as answer:
                    if answer.status_code >= 400:
                        check_status(answer.status_code, answer.headers, await answer.aread())
                    chunks = answer.aiter_bytes()

                    async def read() -> bytes:
                        return await anext(chunks, b"")

                    yield UpstreamStream(answer.headers, read)
                return
            async with await self._post(path, body) as response:
                if response.status >= 400:
                    check_status(response.status, response.headers, await response.read())
                yield UpstreamStream(response.headers, response.content.readany)

    async def _post(self, path: str, body: Any) -> aiohttp.ClientResponse:
        """The answer's head (used as `async with`), over a kept-alive connection if one is
        free. A server may close a connection right after an answer without saying so
        (llama.cpp's does after every stream): a call handed that connection before the loop
        has seen the close fails before any answer arrives, and is sent again (aiohttp does
        that itself only for idempotent methods; a model call has no effect to repeat). Each
        such failure drops its connection, so a few sends get past all the stale ones a burst
        can leave."""
        session, url, data = self._open(), self.base_url + path, pydantic_core.to_json(body)
        sends = 1
        while True:
            try:
                return await session.post(url, data=data)
            except aiohttp.ClientConnectorError:  # no connection at all: the server is down
                raise
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if sends == _STALE_TRIES:
                    raise
                sends += 1

    @asynccontextmanager
    async def _stream_http2(self, path: str, body: Any) -> AsyncIterator[httpx.Response]:
        client = self._open_http2()
        request = client.build_request(
            "POST", self.base_url + path, content=pydantic_core.to_json(body)
        )
        try:
            response = await client.send(request, stream=True)
        except BaseException:  # cancelled (or failed) before the answer's head arrived
            await _reset_forgotten(client, request)
            raise
        try:
            yield response
        finally:
            try:
                await response.aclose()
            finally:
                await _reset_forgotten(client, request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _reset_forgotten(client: httpx.AsyncClient, request: httpx.Request) -> None:
    """Reset the HTTP/2 streams that httpcore has forgotten without telling the server, so it
    stops generating into a stream nobody reads.

    httpcore (1.0) drops a stream whose answer was left before its end, or whose call was
    cancelled before the answer's head arrived, from its own bookkeeping (`_events`) but not
    from the connection's h2 state; its pool holds the connections whose state is reached
    here. A stream h2 still has open that httpcore no longer tracks is such a stream. Without
    HTTP/2 nothing is found (over HTTP/1.1 httpcore closes a connection whose answer was not
    read to its end)."""
    pool = getattr(client._transport, "_pool", None)
    for pooled in list(getattr(pool, "connections", ())):
        connection = getattr(pooled, "_connection", None)
        state = getattr(connection, "_h2_state", None)
        tracked = getattr(connection, "_events", None)
        if connection is None or state is None or tracked is None:
            continue
        forgotten = [
            stream_id
            for stream_id, stream in list(state.streams.items())
            if not stream.closed and stream_id not in tracked
        ]
        for stream_id in forgotten:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        if forgotten:
            # Best effort: a connection that cannot take the reset is broken, which the
            # server sees as well; the caller's own outcome (often a cancellation) stands.
            with contextlib.suppress(Exception):
                await connection._write_outgoing_data(request)


_STALE_TRIES = 4
"""Sends of one model call at most, when kept-alive connections turn out closed."""

# aiohttp's own bound on a line (twice its read buffer): an upstream that never ends a line
# cannot make us buffer without end.
_MAX_LINE = 2 * 2**18


class UpstreamStream:
    """An answer being read: as lines (NDJSON) or as server-sent events.

    Lines are split from whatever each read returns, inside the one generator per answer: a
    line at a time through aiohttp's `readline` (and one generator per layer) cost more than
    the rest of reading a completion."""

    def __init__(self, headers: Mapping[str, str], read: Callable[[], Awaitable[bytes]]) -> None:
        self.headers = headers
        self.read = read  # the next bytes of the body, b"" at its end

    async def lines(self) -> AsyncGenerator[str]:
        read, pending = self.read, b""
        while chunk := await read():
            complete, pending = _split(pending, chunk)
            for line in complete:
                yield line
        if pending:
            yield _decoded(pending)

    async def events(self) -> AsyncGenerator[ServerSentEvent]:
        """Events of a `text/event-stream` body (the WHATWG rules for `event` and `data`)."""
        kind = self.headers.get("content-type", "").partition(";")[0].strip()
        if kind != "text/event-stream":
            raise ProviderUnavailable(f"upstream sent {kind or 'no content type'}, not SSE")
        read, pending = self.read, b""
        event = ""
        data: list[str] = []
        while True:
            chunk = await read()
            if chunk:
                complete, pending = _split(pending, chunk)
            else:  # the end: the unended last line, then a blank one
                complete, pending = ([_decoded(pending)] if pending else []) + [""], b""
            for line in complete:
                if not line:
                    if data:
                        yield ServerSentEvent(event or "message", "\n".join(data))
                    event, data = "", []
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
            if not chunk:
                return


def _decoded(raw: bytes) -> str:
    return raw.decode("utf-8").rstrip("\r")


def _split(pending: bytes, chunk: bytes) -> tuple[list[str], bytes]:
    """The complete lines (without their line ends) of `pending + chunk`, and the rest."""
    *complete, rest = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
    if len(rest) > _MAX_LINE:
        raise ValueError(f"upstream line longer than {_MAX_LINE} bytes")
    return [_decoded(raw) for raw in complete], rest


def error_message(body: bytes) -> str:
    """`error.message` of OpenAI- and Anthropic-style error bodies, else the start of the body."""
    try:
        parsed = json.loads(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except ValueError:
        pass
    return body[:300].decode("utf-8", "replace")


def retry_after(headers: Mapping[str, str]) -> str | None:
    value = headers.get("retry-after")
    if value:
        return value.strip()
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return str(max(1, math.ceil(float(millis) / 1000)))
        except ValueError:
            return None
    return None


def check_status(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise our error for a non-2xx upstream answer."""
    if status < 400:
        return
    message = f"upstream {status}: {error_message(body)}"
    if status == 429:
        raise ProviderRateLimited(message, retry_after(headers))
    raise ProviderUnavailable(message)


@contextmanager
def upstream_errors() -> Iterator[None]:
    """Transport failures and malformed bodies become ProviderTimeout / ProviderUnavailable."""
    try:
        yield
    except ProviderError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ProviderTimeout(f"upstream timed out: {type(exc).__name__}") from exc
    except (aiohttp.ClientConnectorError, httpx.ConnectError) as exc:
        raise ProviderUnreachable(f"upstream unreachable: {type(exc).__name__}: {exc}") from exc
    except (aiohttp.ClientError, httpx.HTTPError) as exc:
        raise ProviderUnavailable(f"upstream failed: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderUnavailable(f"malformed upstream response: {exc!r}") from exc
