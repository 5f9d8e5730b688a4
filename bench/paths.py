"""Paths benchmark: the same completion over the direct path (client -> edge -> gateway) and
over the monolith path (client -> instance -> gateway), interleaved in one run, on the
embedded stack (real processes, embedded engine).

Prints one JSON object: per path p50/p95/mean in ms, their ratio, the saving, and each path's
gateway time (the p50 of the gateway's Server-Timing `total`, which the instance passes on):
the rest of a path's time is the network, the client and, on the monolith path, the instance.

    .venv/bin/python bench/paths.py [--rounds 200]
    .venv/bin/python bench/paths.py --rtt-ms 20,40,20
        # round trips CLIENT_INSTANCE,INSTANCE_GATEWAY,CLIENT_GATEWAY

With --rtt-ms each hop gets that round-trip time added. The preferred emulation is tc netem
on veth pairs between network namespaces, but it needs the kernel's sch_netem; where that is
missing (as in many containers) this benchmark always uses what works everywhere: a TCP relay
per hop on loopback that holds every chunk for half the RTT in each direction (netem's
`delay`, without jitter, loss or rate limits). Like a link, the relay
- delays bytes, not messages: chunks that fall due together go out in one write, so a request
  sent as headers then body pays the delay once, as two packets on a link would;
- charges a new connection its handshake: what a client sends on a connection leaves no
  earlier than one RTT after the connect (the relay itself accepts at once on loopback, so
  without this a client opening a connection per request would pay nothing for it).
The JSON says which emulation ran and how many connections each hop opened while measuring
(0 when every connection is reused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from codesuggest.common.logs import configure
from codesuggest.common.serving import bind
from codesuggest.stack.demo import SAMPLE as REQUEST
from codesuggest.stack.runner import benchmark_stack


class DelayRelay:
    """Listens on loopback and forwards to `target`, delaying each direction by `one_way` s."""

    def __init__(self, target_port: int, one_way: float) -> None:
        self.target_port = target_port
        self.one_way = one_way
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0  # connections opened through this hop

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self) -> None:
        server = await asyncio.start_server(self._accept, sock=self.sock)
        async with server:
            await server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The client's connect returned at once; over the emulated link its handshake would
        # take one RTT, and nothing it sends could leave before then.
        handshake_done = asyncio.get_running_loop().time() + 2 * self.one_way
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        for stream in (writer, up_writer):
            sock = stream.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        await asyncio.gather(
            self._pipe(reader, up_writer, handshake_done),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, not_before: float = 0.0
    ) -> None:
        """Copy `source` to `sink`, each chunk `one_way` after it was read (or after
        `not_before`); b"" in `pending` stands for the end of the stream."""
        loop = asyncio.get_running_loop()
        pending: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()

        async def deliver() -> None:
            while True:
                while not pending:
                    arrived.clear()
                    await arrived.wait()
                wait = pending[0][0] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                # Whatever else is due goes in the same write: chunks sent together arrive
                # together, as over a link, however late this loop woke up.
                now, batch = max(loop.time(), pending[0][0]), []
                while pending and pending[0][0] <= now:
                    batch.append(pending.popleft()[1])
                if any(batch):
                    sink.write(b"".join(batch))
                    await sink.drain()
                if not batch[-1]:
                    sink.close()
                    return

        sender = asyncio.create_task(deliver())

        def put(chunk: bytes) -> None:
            pending.append((max(loop.time(), not_before) + self.one_way, chunk))
            arrived.set()

        try:
            while chunk := await source.read(65536):
                put(chunk)
        finally:
            put(b"")
            await sender


def start_relays(relays: list[DelayRelay]) -> None:
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.gather(*(relay.serve() for relay in relays)))

    threading.Thread(target=run, daemon=True, name="delay-relays").start()


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def gateway_total(reply: httpx.Response) -> float | None:
    """The gateway's own time (ms) from its Server-Timing `total`, which the instance passes on."""
    for metric in reply.headers.get("server-timing", "").split(","):
        name, _, duration = metric.strip().partition(";dur=")
        if name == "total" and duration:
            return float(duration)
    return None


def measure(
    instance_url: str, pat: str, rounds: int, warmup: int, relays: dict[str, DelayRelay]
) -> dict[str, Any]:
    with httpx.Client(timeout=60.0) as http:
        details = http.post(
            f"{instance_url}/api/v4/code_suggestions/direct_access",
            headers={"PRIVATE-TOKEN": pat},
        )
        details.raise_for_status()
        body = details.json()
        direct_url = body["base_url"] + "/v2/completions"
        direct_headers = dict(body["headers"], Authorization=f"Bearer {body['token']}")
        monolith_url = f"{instance_url}/api/v4/code_suggestions/completions"
        monolith_body = dict(REQUEST, intent="completion")

        def direct() -> httpx.Response:
            return http.post(direct_url, headers=direct_headers, json=REQUEST)

        def monolith() -> httpx.Response:
            return http.post(monolith_url, headers={"PRIVATE-TOKEN": pat}, json=monolith_body)

        samples: dict[str, list[float]] = {"direct": [], "monolith": []}
        at_gateway: dict[str, list[float]] = {"direct": [], "monolith": []}
        texts: set[str] = set()
        opened: dict[str, int] = {}
        for index in range(warmup + rounds):
            if index == warmup:
                opened = {hop: relay.accepted for hop, relay in relays.items()}
            order = [("direct", direct), ("monolith", monolith)]
            if index % 2:
                order.reverse()  # neither path always runs on a just-warmed gateway
            for name, call in order:
                t0 = time.perf_counter()
                reply = call()
                elapsed = (time.perf_counter() - t0) * 1000
                reply.raise_for_status()
                choices = reply.json().get("choices") or []
                texts.add(choices[0]["text"] if choices else "")
                if index >= warmup:
                    samples[name].append(elapsed)
                    if (total := gateway_total(reply)) is not None:
                        at_gateway[name].append(total)
    direct_stats, monolith_stats = stats(samples["direct"]), stats(samples["monolith"])
    return {
        "direct_ms": direct_stats,
        "monolith_ms": monolith_stats,
        "ratio_p50_monolith_over_direct": round(monolith_stats["p50"] / direct_stats["p50"], 3),
        "ratio_p95_monolith_over_direct": round(monolith_stats["p95"] / direct_stats["p95"], 3),
        "saved_p50_ms": round(monolith_stats["p50"] - direct_stats["p50"], 2),
        "gateway_total_p50_ms": {
            name: round(statistics.median(values), 2)
            for name, values in at_gateway.items()
            if values
        },
        "same_suggestion_both_paths": len(texts) == 1,
        **(
            {
                "connections_opened_while_measuring": {
                    hop: relay.accepted - opened[hop] for hop, relay in relays.items()
                }
            }
            if relays
            else {}
        ),
    }


def run(rounds: int, warmup: int, rtt_ms: tuple[float, float, float] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "paths", "rounds": rounds, "engine": "embedded"}
    with tempfile.TemporaryDirectory(prefix="codesuggest-bench-") as tmp:
        stack = benchmark_stack(Path(tmp))
        relays: dict[str, DelayRelay] = {}
        if rtt_ms is not None:
            client_instance, instance_gateway, client_gateway = (ms / 2000 for ms in rtt_ms)
            layout = stack.layout
            relays = {
                "client_instance": DelayRelay(layout.port("self-managed"), client_instance),
                "instance_gateway": DelayRelay(layout.port("gateway"), instance_gateway),
                "client_gateway": DelayRelay(layout.port("gateway"), client_gateway),
            }
            start_relays(list(relays.values()))
            stack.overrides = {
                "self-managed": {
                    "CODESUGGEST_INSTANCE_GATEWAY_URL": relays["instance_gateway"].url,
                    "CODESUGGEST_INSTANCE_EDGE_URL": relays["client_gateway"].url,
                }
            }
            result["rtt_ms"] = {
                "client_instance": rtt_ms[0],
                "instance_gateway": rtt_ms[1],
                "client_gateway": rtt_ms[2],
            }
            result["emulation"] = "tcp delay relay per hop on loopback (rtt/2 each way)"
        else:
            result["emulation"] = "none (loopback)"
        try:
            stack.up()
            instance_url = (
                relays["client_instance"].url if relays else stack.layout.url("self-managed")
            )
            pat = stack.state["instances"]["self-managed"]["user_pat"]
            result.update(measure(instance_url, pat, rounds, warmup, relays))
        finally:
            stack.down()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--rtt-ms",
        help="CLIENT_INSTANCE,INSTANCE_GATEWAY,CLIENT_GATEWAY round trips, e.g. 20,40,20",
    )
    args = parser.parse_args()
    configure("WARNING")
    rtt = None
    if args.rtt_ms:
        values = tuple(float(v) for v in args.rtt_ms.split(","))
        if len(values) != 3 or min(values) < 0:
            parser.error("--rtt-ms takes three non-negative numbers")
        rtt = values  # type: ignore[assignment]
    print(json.dumps(run(args.rounds, args.warmup, rtt), indent=2))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
