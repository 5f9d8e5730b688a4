"""Gateway completion benchmark: overhead per request and throughput, printed as JSON.

The gateway (a trusted SaaS issuer, real tokens) runs in its own process on loopback; this
process is the client. `--provider embedded` (default) serves from the embedded engine in the
gateway's process; `--provider openai` puts the gateway in front of a fake OpenAI-compatible
model in a third process that answers at once (bench/peers.py's floor), which is how a
deployment with a model server runs. Reported:
  overhead_ms  p50/p99 of (Server-Timing total - model) over sequential requests: what the
               gateway adds around the model call (auth, parsing, prompt, post-processing, usage);
  model_ms     p50/p99 of Server-Timing model: the embedded engine's time, or the whole upstream
               HTTP call to the fake model (the hop the overhead above does not include);
  added_over_model_ms  (openai only) p50/p99 of what a client sees minus what the same client
               sees calling the fake model directly, requests interleaved: the gateway's whole
               cost, upstream hop included;
  throughput   completions per second at --concurrency for --duration seconds, with errors.
`--usage off` runs the gateway with usage tracking disabled; `on` with the default outbox
(JSONL sink).

    .venv/bin/python bench/gateway.py --duration 20 --usage on
    .venv/bin/python bench/gateway.py --provider openai
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from peers import MODEL as FAKE_MODEL
from peers import serve_fake_model

USER_ID = "bench-user"
INSTANCE_ID = "bench-instance"
_TIMING = re.compile(r"(\w+);dur=([\d.]+)")
_CURSOR = re.compile(r"\w\.|\w\(| = |\n[ ]+(?=\w)")


def _serve(conn: Any, usage: str, data_dir: str, model_url: str | None) -> None:
    """Child process: a JWKS issuer and the gateway, each a real uvicorn server."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from codesuggest.common.serving import bind, server_config
    from codesuggest.gateway.app import create_app
    from codesuggest.gateway.completions.settings import CompletionsSettings
    from codesuggest.gateway.fairness import FairnessSettings
    from codesuggest.gateway.settings import GatewaySettings, TrustedIssuer
    from codesuggest.gateway.usage.settings import UsageSettings
    from codesuggest.tokens import (
        COMPLETE_CODE,
        PrivateKey,
        Signer,
        jwks_document,
        openid_configuration,
    )

    def run(app: Any) -> tuple[str, uvicorn.Server]:
        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(server_config(app, "127.0.0.1", sock.getsockname()[1]))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}", server

    key = PrivateKey.generate()
    issuer_app = FastAPI()
    issuer_url: dict[str, str] = {}
    issuer_app.get("/.well-known/openid-configuration")(
        lambda: openid_configuration(issuer_url["url"])
    )
    issuer_app.get("/oauth/discovery/keys")(lambda: JSONResponse(jwks_document([key.public])))
    issuer_url["url"], _ = run(issuer_app)
    settings = GatewaySettings(
        trusted_issuers=[TrustedIssuer(url=issuer_url["url"], kind="saas-instance")],
        data_dir=Path(data_dir),
        usage=UsageSettings(enabled=usage == "on"),
        # One user of one instance sends everything here: the limits stay on, far above the load.
        fairness=FairnessSettings(
            user_rate=1e6,
            user_burst=10**6,
            user_concurrency=1000,
            instance_rate=1e6,
            instance_burst=10**6,
        ),
        completions=CompletionsSettings()
        if model_url is None
        else CompletionsSettings(
            provider="openai",
            openai_base_url=model_url + "/v1",
            openai_model=FAKE_MODEL,
            embedded_enabled=False,
        ),
    )
    app = create_app(settings)
    url, _ = run(app)
    token, _ = Signer(key, issuer_url["url"]).mint(
        subject=USER_ID,
        audience="gitlab-ai-gateway",
        lifetime=3600,
        extra={"gitlab_realm": "saas", "gitlab_instance_id": INSTANCE_ID,
               "scopes": [COMPLETE_CODE], "token_kind": "user"},
    )  # fmt: skip
    conn.send({"url": url, "token": token, "recorder": type(app.state.ctx.usage).__name__})
    conn.recv()  # wait until the benchmark is done


def _bodies(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Cursor positions in stdlib files the embedded engine never trained on: after a `.`,
    `(` or `= ` inside a line, or at the indentation of a new line, with the rest of the line
    not yet typed."""
    from codesuggest.gateway.embedded import EmbeddedEngine

    files = sorted(EmbeddedEngine.held_out_files())[:40]
    sources = [f.read_text(errors="replace") for f in files]
    rng = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    while len(bodies) < count:
        text = rng.choice(sources)
        if len(text) < 500:
            continue
        start = rng.randrange(200, len(text) - 200)
        hit = _CURSOR.search(text, start)
        if hit is None:
            continue
        cut = hit.end()
        # The developer is typing: the rest of the line is not written yet.
        line_end = text.find("\n", cut)
        below = text[line_end : line_end + 1000] if line_end >= 0 else ""
        bodies.append(
            {
                "prompt_version": 1,
                "current_file": {
                    "file_name": "bench/module.py",
                    "content_above_cursor": text[max(0, cut - 4000) : cut],
                    "content_below_cursor": below,
                },
            }
        )
    return bodies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def _latency(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    overhead, model, client_ms = [], [], []
    served = 0
    for body in bodies:
        started = time.perf_counter()
        r = await client.post("/v2/completions", json=body)
        client_ms.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
        served += bool(r.json()["choices"])
        stages = {k: float(v) for k, v in _TIMING.findall(r.headers["server-timing"])}
        model.append(stages["model"])
        overhead.append(stages["total"] - stages["model"])
    return {
        "requests": len(bodies),
        "with_suggestion": served,
        "overhead_ms": {"p50": _pct(overhead, 0.5), "p99": _pct(overhead, 0.99),
                        "mean": round(statistics.fmean(overhead), 3)},
        "model_ms": {"p50": _pct(model, 0.5), "p99": _pct(model, 0.99)},
        "client_observed_ms": {"p50": _pct(client_ms, 0.5), "p99": _pct(client_ms, 0.99)},
    }  # fmt: skip


async def _throughput(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int, duration: float
) -> dict[str, Any]:
    done = errors = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        nonlocal done, errors
        i = offset
        while time.perf_counter() < deadline:
            try:
                r = await client.post("/v2/completions", json=bodies[i % len(bodies)])
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    done += 1
                else:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "completions": done,
        "errors": errors,
        "statuses": statuses,
        "completions_per_s": round(done / elapsed, 1),
    }


async def _added_over_model(
    client: httpx.AsyncClient, model_url: str, bodies: list[dict[str, Any]]
) -> dict[str, Any]:
    """Gateway vs the fake model called directly by the same kind of client, interleaved."""
    through, direct = [], []
    upstream = {"model": FAKE_MODEL, "prompt": "x" * 4000, "max_tokens": 64}
    async with httpx.AsyncClient(base_url=model_url, timeout=30) as model:
        for body in bodies:
            started = time.perf_counter()
            (await client.post("/v2/completions", json=body)).raise_for_status()
            through.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            (await model.post("/v1/completions", json=upstream)).raise_for_status()
            direct.append((time.perf_counter() - started) * 1000)
    return {
        q: round(_pct(through, level) - _pct(direct, level), 3)
        for q, level in (("p50", 0.5), ("p99", 0.99))
    }


async def _bench(
    url: str, token: str, args: argparse.Namespace, model_url: str | None
) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Realm": "saas",
        "X-Gitlab-Instance-Id": INSTANCE_ID,
        "X-Gitlab-Global-User-Id": USER_ID,
    }
    bodies = _bodies(max(args.requests, 256))
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:
        deadline = time.monotonic() + 120
        while (await c.get("/monitoring/ready")).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("gateway not ready")
            await asyncio.sleep(0.05)
        for body in bodies[:50]:  # warm-up: engine loaded, connections open
            (await c.post("/v2/completions", json=body)).raise_for_status()
        latency = await _latency(c, bodies[: args.requests])
        if model_url is not None:
            latency["added_over_model_ms"] = await _added_over_model(
                c, model_url, bodies[: args.requests]
            )
        throughput = await _throughput(c, bodies, args.concurrency, args.duration)
    return {"latency": latency, "throughput": throughput}


def _start(
    ctx: Any, usage: str, data_dir: str, model_url: str | None
) -> tuple[Any, Any, dict[str, Any]]:
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, usage, data_dir, model_url), daemon=True)
    server.start()
    return server, parent, parent.recv()


def _stop(server: Any, pipe: Any) -> None:
    pipe.send("stop")
    server.join(timeout=10)
    if server.is_alive():
        server.terminate()


async def _compare(infos: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Tracking on and off, two gateways, requests interleaved so both see the same noise."""
    bodies = _bodies(args.requests)
    clients = {}
    for mode, info in infos.items():
        headers = {
            "Authorization": f"Bearer {info['token']}", "X-Gitlab-Authentication-Type": "oidc",
            "X-Gitlab-Realm": "saas", "X-Gitlab-Instance-Id": INSTANCE_ID,
            "X-Gitlab-Global-User-Id": USER_ID,
        }  # fmt: skip
        clients[mode] = httpx.AsyncClient(base_url=info["url"], headers=headers, timeout=30)
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in clients}
    try:
        for c in clients.values():
            for _ in range(2400):  # up to 2 minutes for the engine to load
                if (await c.get("/monitoring/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            for body in bodies[:50]:
                (await c.post("/v2/completions", json=body)).raise_for_status()
        for i, body in enumerate(bodies):
            order = list(clients) if i % 2 == 0 else list(reversed(list(clients)))
            for mode in order:
                samples[mode].append(await _latency(clients[mode], [body]))
    finally:
        for c in clients.values():
            await c.aclose()
    result: dict[str, Any] = {}
    for mode, rows in samples.items():
        overhead = [r["overhead_ms"]["p50"] for r in rows]
        result[mode] = {"overhead_ms": {"p50": _pct(overhead, 0.5), "p99": _pct(overhead, 0.99)}}
    result["overhead_p50_difference_ms"] = round(
        result["on"]["overhead_ms"]["p50"] - result["off"]["overhead_ms"]["p50"], 3
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="throughput phase, s")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=500, help="sequential latency samples")
    parser.add_argument(
        "--usage", choices=["on", "off", "both"], default="on",
        help="usage tracking; 'both' compares on and off side by side (latency only)",
    )  # fmt: skip
    parser.add_argument(
        "--provider", choices=["embedded", "openai"], default="embedded",
        help="the embedded engine, or the openai provider in front of a fake model process",
    )  # fmt: skip
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    model_url = None
    if args.provider == "openai":
        parent, child = ctx.Pipe()
        ctx.Process(target=serve_fake_model, args=(child,), daemon=True).start()
        model_url = f"http://127.0.0.1:{parent.recv()}"
    with tempfile.TemporaryDirectory() as data_dir:
        modes = ["on", "off"] if args.usage == "both" else [args.usage]
        started = {m: _start(ctx, m, str(Path(data_dir) / m), model_url) for m in modes}
        infos = {m: info for m, (_, _, info) in started.items()}
        try:
            if args.usage == "both":
                result = asyncio.run(_compare(infos, args))
            else:
                info = infos[args.usage]
                result = asyncio.run(_bench(info["url"], info["token"], args, model_url))
        finally:
            for server, pipe, _ in started.values():
                _stop(server, pipe)
    result = {
        "benchmark": "gateway-completions",
        "provider": args.provider,
        "usage": args.usage,
        "usage_recorder": {m: info["recorder"] for m, info in infos.items()},
        **result,
        "targets": {"overhead_p50_ms": 1, "overhead_p99_ms": 5, "embedded_p50_ms": 10},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
