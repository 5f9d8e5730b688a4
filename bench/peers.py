"""Peers benchmark: our gateway beside the floor and its peers, interleaved in one run, as JSON.

Targets, each its own process on loopback, all driven by one raw keep-alive HTTP/1.1 client:
  model    a fake OpenAI-compatible model that answers at once: the floor;
  fastapi  a bare FastAPI endpoint (uvicorn, JSON in and out): what any Python service costs;
  gateway  `codesuggest gateway serve --workers N`, the `openai` provider in front of `model`,
           a real user token, usage tracking on (the default outbox and JSONL sink);
  litellm  the LiteLLM proxy in front of `model` (master key on, no database). An optional
           benchmark dependency, not installed by the project: `pip install 'litellm[proxy]'`
           into any venv and pass its `litellm` executable with --litellm (default: `litellm`
           on PATH); without it the JSON says it was skipped.

Latency: `--requests` sequential requests per target, the targets taking turns request by
request (so they share the machine's noise); p50/p90/p99, each target's added latency over the
floor at the same percentile, and the ratios the gateway is judged by. CPU: each target's
processes' CPU time (user + system, all its processes) per request over that phase, a figure a
busy machine disturbs far less than latency (the model's includes answering the gateway and
LiteLLM). Throughput: completions per second over
`--concurrency` keep-alive connections for `--duration` seconds per target.

    .venv/bin/python bench/peers.py --workers 2 --litellm .venv-litellm/bin/litellm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

MODEL = "qwen2.5-coder-1.5b"  # picks the qwen FIM template, like a real deployment
USER_ID = "bench-user"
MASTER_KEY = "sk-bench-master"
COMPLETION = {
    "id": "cmpl-bench",
    "object": "text_completion",
    "created": 1700000000,
    "model": MODEL,
    "choices": [{"index": 0, "text": "total += item.price", "finish_reason": "stop",
                 "logprobs": None}],
    "usage": {"prompt_tokens": 900, "completion_tokens": 6, "total_tokens": 906},
}  # fmt: skip


def _prefix(chars: int = 4000) -> str:
    """Python code ending mid-function, with brackets and strings for post-processing to scan."""
    block = (
        "def total(items: list[dict[str, float]]) -> float:\n"
        '    """Sum the prices (in "EUR")."""\n'
        "    result = {'count': 0, 'sum': 0.0}\n"
        "    for item in items:\n"
        "        result['sum'] += float(item.get('price', 0))\n"
        "        result['count'] += 1\n"
        "    return result['sum']\n\n\n"
    )
    text = block * (chars // len(block) + 1)
    return (
        text[-chars:]
        + "def order_total(order):\n    total = 0\n    for item in order.items:\n        "
    )


# --- the targets -----------------------------------------------------------------------------


def serve_fake_model(port_out: Any) -> None:
    """An OpenAI-compatible `/v1/completions` and `/v1/chat/completions` that answers at once
    (JSON, or one SSE chunk and `[DONE]` for `"stream": true`): a bare asyncio protocol, so
    what it costs is the floor of any HTTP hop."""
    import uvloop

    text_body = json.dumps(COMPLETION).encode()
    chat = dict(COMPLETION, object="chat.completion")
    message = {"role": "assistant", "content": "total += item.price"}
    chat["choices"] = [{"index": 0, "finish_reason": "stop", "message": message}]
    chat_body = json.dumps(chat).encode()

    def answer(body: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def events(chunk: dict[str, Any]) -> bytes:
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    text_answer, chat_answer = answer(text_body), answer(chat_body)
    delta = {"role": "assistant", "content": "total += item.price"}
    chat_chunk = dict(chat, object="chat.completion.chunk")
    chat_chunk["choices"] = [{"index": 0, "finish_reason": "stop", "delta": delta}]
    text_stream, chat_stream = events(COMPLETION), events(chat_chunk)

    class Model(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                length = 0
                at = head.find(b"content-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at)
                    length = int(head[at + 15 : stop if stop >= 0 else None])
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                chat = b"/chat/" in head[:60]
                if b'"stream": true' in body or b'"stream":true' in body:
                    self.transport.write(chat_stream if chat else text_stream)
                else:
                    self.transport.write(chat_answer if chat else text_answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Model, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    uvloop.run(main())


def _bare_fastapi(port_out: Any) -> None:
    """One FastAPI route that parses a JSON body and answers JSON, served like the gateway."""
    import uvicorn

    from codesuggest.common.serving import bind, server_config

    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict[str, Any]:
        body = await request.json()
        return dict(COMPLETION, model=body.get("model", MODEL))

    sock = bind("127.0.0.1", 0)
    port_out.send(sock.getsockname()[1])
    uvicorn.Server(server_config(app, "127.0.0.1", sock.getsockname()[1])).run(sockets=[sock])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_gateway(
    model_url: str, workers: int, data_dir: Path
) -> tuple[subprocess.Popen, int, str]:  # type: ignore[type-arg]
    """`codesuggest gateway serve` as an operator runs it; returns (process, port, user token)."""
    from codesuggest.tokens import COMPLETE_CODE, PrivateKey, Signer
    from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME

    key = PrivateKey.generate()
    key_file = data_dir / "signing-key.pem"
    key.write(key_file)
    token, _ = Signer(key, DEFAULT_SERVICE_NAME).mint(
        subject=USER_ID,
        audience=DEFAULT_SERVICE_NAME,
        lifetime=6 * 3600,
        extra={"gitlab_realm": "saas", "scopes": [COMPLETE_CODE], "token_kind": "user"},
    )
    port = _free_port()
    env = {
        **os.environ,
        "CODESUGGEST_GATEWAY_DATA_DIR": str(data_dir),
        "CODESUGGEST_GATEWAY_SIGNING_KEY_FILE": str(key_file),
        "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "openai",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_BASE_URL": model_url + "/v1",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_MODEL": MODEL,
        "CODESUGGEST_GATEWAY_COMPLETIONS__EMBEDDED_ENABLED": "false",
        # One user sends everything here: the per-user limits stay on, far above the load.
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_RATE": "1000000",
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_BURST": "1000000",
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_CONCURRENCY": "1000",
    }
    exe = Path(sys.executable).with_name("codesuggest")
    process = subprocess.Popen(
        [str(exe), "gateway", "serve", "--port", str(port), "--workers", str(workers)], env=env
    )
    return process, port, token


def _start_litellm(exe: str, model_url: str, work: Path) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: text-completion-openai/{MODEL}\n"
        f"      api_base: {model_url}/v1\n"
        "      api_key: sk-fake\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False", NO_DOCS="True")
    process = subprocess.Popen(
        [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "litellm.log", "wb"),  # noqa: SIM115 - lives as long as the process
    )
    return process, port


# --- the client ------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    port: int
    request: bytes


def _request(path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        "host: 127.0.0.1",
        "content-type: application/json",
        f"content-length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    """A raw keep-alive HTTP/1.1 connection: one request at a time, Content-Length answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at >= 0:
            await self.reader.readexactly(int(lower[at + 15 : lower.find(b"\r\n", at)]))
        elif b"transfer-encoding: chunked" in lower:
            while size := int((await self.reader.readline()).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        return status

    def close(self) -> None:
        self.writer.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _ready(target: Target, deadline: float) -> None:
    while True:
        try:
            conn = await Connection.open(target.port)
            try:
                if await conn.call(target.request) == 200:
                    return
            finally:
                conn.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target.name} did not answer 200 in time")
        await asyncio.sleep(0.2)


async def _latency(targets: list[Target], requests: int, warmup: int) -> dict[str, list[float]]:
    conns = {t.name: await Connection.open(t.port) for t in targets}
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for i in range(warmup + requests):
            shift = i % len(targets)
            for target in targets[shift:] + targets[:shift]:
                started = time.perf_counter()
                status = await conns[target.name].call(target.request)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise RuntimeError(f"{target.name} answered {status}")
                if i >= warmup:
                    samples[target.name].append(elapsed)
    finally:
        for conn in conns.values():
            conn.close()
    return samples


async def _throughput(target: Target, concurrency: int, duration: float) -> dict[str, Any]:
    conns = [await Connection.open(target.port) for _ in range(concurrency)]
    done = errors = 0
    deadline = time.perf_counter() + duration

    async def worker(conn: Connection) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            if await conn.call(target.request) == 200:
                done += 1
            else:
                errors += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    elapsed = time.perf_counter() - started
    return {"completions_per_s": round(done / elapsed, 1), "completions": done, "errors": errors}


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    qs = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    latency = {n: {k: _pct(v, q) for k, q in qs.items()} for n, v in samples.items()}
    floor = latency["model"]
    added = {
        n: {k: round(v[k] - floor[k], 3) for k in qs} for n, v in latency.items() if n != "model"
    }
    ratios: dict[str, Any] = {}
    if "gateway" in added:
        gw = added["gateway"]["p50"]
        ratios["gateway_added_p50_over_fastapi_p50"] = round(gw / latency["fastapi"]["p50"], 2)
        if "litellm" in added and gw > 0:
            ratios["litellm_added_over_gateway_added_p50"] = round(added["litellm"]["p50"] / gw, 2)
    return {"latency_ms": latency, "added_over_floor_ms": added, "ratios": ratios}


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and its children (the gateway's workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests each")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="throughput phase, s")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--litellm", default="litellm", help="the LiteLLM proxy executable")
    args = parser.parse_args()

    import uvloop

    ctx = mp.get_context("spawn")
    processes: list[Any] = []
    popen: list[subprocess.Popen] = []  # type: ignore[type-arg]
    result: dict[str, Any] = {"benchmark": "peers", "machine_before": _machine()}
    with tempfile.TemporaryDirectory() as work:
        try:
            ports = {}
            for name, fn in (("model", serve_fake_model), ("fastapi", _bare_fastapi)):
                parent, child = ctx.Pipe()
                process = ctx.Process(target=fn, args=(child,), daemon=True)
                process.start()
                processes.append(process)
                ports[name] = parent.recv()
            model_url = f"http://127.0.0.1:{ports['model']}"
            body = {"model": MODEL, "prompt": _prefix(), "max_tokens": 64, "temperature": 0.2}
            targets = [
                Target("model", ports["model"], _request("/v1/completions", body, {})),
                Target("fastapi", ports["fastapi"], _request("/v1/completions", body, {})),
            ]
            gw, gw_port, token = _start_gateway(model_url, args.workers, Path(work) / "gateway")
            popen.append(gw)
            completion = {"prompt_version": 1, "current_file": {
                "file_name": "shop/orders.py", "content_above_cursor": _prefix(),
                "content_below_cursor": "\n    return total\n"}}  # fmt: skip
            auth = {"authorization": f"Bearer {token}", "x-gitlab-authentication-type": "oidc",
                    "x-gitlab-realm": "saas", "x-gitlab-global-user-id": USER_ID}  # fmt: skip
            targets.append(
                Target("gateway", gw_port, _request("/v2/completions", completion, auth))
            )
            exe = shutil.which(args.litellm)
            if exe is None:
                result["litellm"] = (
                    f"skipped: no LiteLLM proxy executable {args.litellm!r} "
                    "(pip install 'litellm[proxy]' and pass --litellm PATH)"
                )
            else:
                ll, ll_port = _start_litellm(exe, model_url, Path(work))
                popen.append(ll)
                auth = {"authorization": f"Bearer {MASTER_KEY}"}
                targets.append(Target("litellm", ll_port, _request("/v1/completions", body, auth)))

            pids = {"model": processes[0].pid, "fastapi": processes[1].pid, "gateway": gw.pid}
            if len(popen) > 1:
                pids["litellm"] = popen[1].pid

            async def run() -> dict[str, Any]:
                deadline = time.monotonic() + 180
                for target in targets:
                    await _ready(target, deadline)
                before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
                samples = await _latency(targets, args.requests, args.warmup)
                n = args.requests + args.warmup
                cpu = {
                    name: round((_cpu_seconds(pid) - before[name]) / n * 1e6)
                    for name, pid in pids.items()
                }
                throughput = {
                    t.name: await _throughput(t, args.concurrency, args.duration) for t in targets
                }
                return {**_summary(samples), "cpu_us_per_request": cpu, "throughput": throughput}

            result.update(
                requests=args.requests,
                gateway_workers=args.workers,
                concurrency=args.concurrency,
                **uvloop.run(run()),
            )
        finally:
            for p in popen:
                p.terminate()
            for p in popen:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
            for process in processes:
                process.terminate()
    result["machine_after"] = _machine()
    result["targets"] = {
        "gateway_added_p50_over_fastapi_p50_max": 3,
        "gateway_added_p99_ms_max": 2.5,
        "litellm_added_over_gateway_added_p50_min": 8,
        "gateway_completions_per_s_min_with_2_workers": 1000,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
