"""The resource bounds every server gets from common.serving, seen from a raw socket."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from codesuggest.common.serving import DEFAULT_LIMITS, ServingLimits
from support.servers import ServerThread

LIMITS = ServingLimits(header_timeout=1.0, keep_alive_timeout=0.5, max_connections=300)


def _app() -> FastAPI:
    app = FastAPI()
    app.state.bodies_read = 0

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        app.state.bodies_read += 1
        return {"bytes": len(body)}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(_app(), limits=LIMITS) as running:
        yield running


def _connect(server: ServerThread, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_the_defaults_match_nginx_body_limit_and_close_idle_connections() -> None:
    assert DEFAULT_LIMITS.max_body_bytes == 1024 * 1024
    assert 0 < DEFAULT_LIMITS.keep_alive_timeout <= 10
    assert 0 < DEFAULT_LIMITS.header_timeout <= 30


def test_a_20_mb_body_is_refused_with_413_before_it_is_sent(server: ServerThread) -> None:
    read_before = server.app.state.bodies_read
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 20971520\r\n\r\n")
        response = _read_all(sock)
    assert _status(response) == 413
    assert b'{"error": "Request body is larger than 1048576 bytes"}' in response
    assert server.app.state.bodies_read == read_before


def test_a_chunked_body_is_cut_off_at_the_limit(server: ServerThread) -> None:
    chunk = b"a" * (512 * 1024)
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(4):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = _read_all(sock)
    assert _status(response) == 413


def test_a_body_within_the_limit_is_served(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/echo", content=b"x" * (1024 * 1024))
    assert response.status_code == 200
    assert response.json() == {"bytes": 1024 * 1024}


def test_too_many_headers_get_431(server: ServerThread) -> None:
    headers = {f"x-h{i}": "1" for i in range(LIMITS.max_headers + 1)}
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/echo", headers=headers)
    assert response.status_code == 431
    assert response.json() == {"error": "Too many headers"}


def test_a_one_megabyte_header_gets_431(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/echo", headers={"x-big": "a" * 1024 * 1024})
    assert response.status_code == 431


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server: ServerThread) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""
        elapsed = time.monotonic() - started
    assert LIMITS.keep_alive_timeout * 0.8 <= elapsed < 4.5


def test_a_connection_stuck_mid_header_gets_408(server: ServerThread) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
        response = _read_all(sock)
        elapsed = time.monotonic() - started
    assert _status(response) == 408
    assert LIMITS.header_timeout * 0.8 <= elapsed < 4.5


def test_100_slowloris_connections_do_not_stop_a_normal_client(server: ServerThread) -> None:
    slow = []
    try:
        for _ in range(100):
            sock = _connect(server)
            sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\nx-a: ")
            slow.append(sock)
        with httpx.Client(base_url=server.url, timeout=5) as client:
            started = time.monotonic()
            response = client.post("/echo", content=b"hello")
            elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < LIMITS.header_timeout
        # and the stuck ones are all cut off by the header timeout
        for sock in slow:
            assert _status(_read_all(sock)) == 408
    finally:
        for sock in slow:
            sock.close()
