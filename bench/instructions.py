"""Instructions per completion: the gateway's CPU cost as a count that the machine's load does not
change, printed as JSON.

Latency and throughput figures on a shared machine move by tens of percent from one minute to
the next; valgrind's callgrind counts the instructions a process executes, the same from run to
run. This benchmark runs the gateway app in one process under callgrind (its ASGI app called
directly, so uvicorn's HTTP parsing, the same for every build, is left out), in front of
bench/peers.py's fake OpenAI-compatible model (its own process, not counted) with a real user
token and usage tracking as configured. It runs twice, with `--base` and with `--base +
--requests` completions, and divides the difference by `--requests`: start-up and imports
cancel out. Everything the gateway's process does per completion counts, its writer thread
included; work left to the background (usage shipping) counts as much of it as ran.

    .venv/bin/python bench/instructions.py
    .venv/bin/python bench/instructions.py --usage off

Needs `valgrind` on PATH (Debian's package); without it the JSON says it was skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from peers import MODEL, USER_ID, _prefix, serve_fake_model

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _settings_env(
    model_url: str, key_file: Path, work: Path, usage: str
) -> tuple[dict[str, str], str]:
    """The gateway's environment (as bench/peers.py configures it) and a user token."""
    from codesuggest.tokens import COMPLETE_CODE, PrivateKey, Signer
    from codesuggest.tokens.claims import DEFAULT_SERVICE_NAME

    key = PrivateKey.from_file(key_file)
    token, _ = Signer(key, DEFAULT_SERVICE_NAME).mint(
        subject=USER_ID,
        audience=DEFAULT_SERVICE_NAME,
        lifetime=3600,
        extra={"gitlab_realm": "saas", "scopes": [COMPLETE_CODE], "token_kind": "user"},
    )
    env = {
        "CODESUGGEST_GATEWAY_DATA_DIR": str(work),
        "CODESUGGEST_GATEWAY_SIGNING_KEY_FILE": str(key_file),
        "CODESUGGEST_GATEWAY_COMPLETIONS__PROVIDER": "openai",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_BASE_URL": model_url + "/v1",
        "CODESUGGEST_GATEWAY_COMPLETIONS__OPENAI_MODEL": MODEL,
        "CODESUGGEST_GATEWAY_COMPLETIONS__EMBEDDED_ENABLED": "false",
        "CODESUGGEST_GATEWAY_USAGE__ENABLED": "true" if usage == "on" else "false",
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_RATE": "1000000",
        "CODESUGGEST_GATEWAY_FAIRNESS__USER_BURST": "1000000",
    }
    return env, token


async def _complete_many(count: int, token: str) -> None:
    """Child: the gateway app, started by its lifespan, serving `count` completions."""
    from codesuggest.gateway.app import create_app

    app = create_app()
    body = json.dumps(
        {
            "prompt_version": 1,
            "current_file": {
                "file_name": "shop/orders.py",
                "content_above_cursor": _prefix(),
                "content_below_cursor": "\n    return total\n",
            },
        }
    ).encode()
    headers = [
        (b"host", b"gateway"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {token}".encode()),
        (b"x-gitlab-authentication-type", b"oidc"),
        (b"x-gitlab-realm", b"saas"),
        (b"x-gitlab-global-user-id", USER_ID.encode()),
    ]

    async def complete() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/v2/completions", "raw_path": b"/v2/completions",
            "query_string": b"", "root_path": "", "headers": headers, "state": {},
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        answered = asyncio.Event()
        request = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            if request:
                return request.pop()
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        answered.set()
        if statuses != [200]:
            raise RuntimeError(f"the gateway answered {statuses}")

    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, events.get, replies.put)
    )
    await events.put({"type": "lifespan.startup"})
    if (await replies.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the gateway did not start")
    for _ in range(count):
        await complete()
    await events.put({"type": "lifespan.shutdown"})
    await lifespan


def _child(count: int, model_port: int, key_file: Path, usage: str) -> None:
    import uvloop

    with tempfile.TemporaryDirectory() as work:
        url = f"http://127.0.0.1:{model_port}"
        env, token = _settings_env(url, key_file, Path(work), usage)
        os.environ.update(env)
        uvloop.run(_complete_many(count, token))


def _run(command: list[str], count: int, model_port: int, key_file: Path, usage: str) -> str:
    run = subprocess.run(
        [*command, sys.executable, __file__, "--child", str(count), "--model-port",
         str(model_port), "--key", str(key_file), "--usage", usage],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"the gateway's run failed ({run.returncode}): {run.stderr[-2000:]}")
    return run.stderr


def _instructions(valgrind: str, count: int, model_port: int, key_file: Path, usage: str) -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out"]
        stderr = _run(command, count, model_port, key_file, usage)
    found = _REFS.search(stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="completions counted")
    parser.add_argument("--base", type=int, default=50, help="completions in the shorter run")
    parser.add_argument("--usage", choices=("on", "off"), default="on")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.model_port, args.key, args.usage)
        return
    result: dict[str, Any] = {"benchmark": "instructions", "usage": args.usage}
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        result["skipped"] = "no valgrind on PATH (apt-get install valgrind)"
        print(json.dumps(result, indent=2))
        return
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    model = ctx.Process(target=serve_fake_model, args=(child,), daemon=True)
    model.start()
    from codesuggest.tokens import PrivateKey

    try:
        port = parent.recv()
        with tempfile.TemporaryDirectory() as keys:
            # One key for both runs (making one takes a random number of instructions), and
            # a run without valgrind first, so that both counted runs find compiled bytecode.
            key_file = Path(keys) / "signing-key.pem"
            PrivateKey.generate().write(key_file)
            _run([], 1, port, key_file, args.usage)
            short = _instructions(valgrind, args.base, port, key_file, args.usage)
            long = _instructions(valgrind, args.base + args.requests, port, key_file, args.usage)
    finally:
        model.terminate()
    result.update(
        requests=args.requests,
        instructions_per_completion=round((long - short) / args.requests),
        instructions_total={"short": short, "long": long},
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
