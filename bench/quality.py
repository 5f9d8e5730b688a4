"""Quality and latency bench of the embedded completion engine; prints JSON.

Cursors are drawn (seeded) from code the engine never trained on: the held-out
stdlib files and a few third-party packages installed in the venv.

* mid_line: a random column inside a random non-blank, non-comment line (at least
  one non-space character before it); the truth is the rest of that line, and the
  suffix given to the engine starts at the line end (the user has not typed the
  rest of the line yet).
* whole_line: the cursor after the indentation of a random non-blank, non-comment
  line; the truth is that line without its indentation.

Metrics (shares of all sampled cursors): ``shown`` (non-empty completion),
``exact`` (completion == truth), ``acceptable`` (non-empty and a prefix of the
truth: usable as is), ``acceptable_of_shown``, and ``chars_saved`` (characters of
acceptable completions / characters of all truths).

    .venv/bin/python bench/quality.py --seed 1 --samples 500
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import random
import sys
import tempfile
import time

import numpy as np

from codesuggest.gateway.embedded import EmbeddedEngine
from codesuggest.gateway.embedded.corpus import SKIP_PARTS, _python_files, read_source

THIRD_PARTY = ("httpx", "starlette", "pydantic")


def third_party_files(names=THIRD_PARTY) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for loc in spec.submodule_search_locations:
            files += _python_files(pathlib.Path(loc), skip=SKIP_PARTS - {"site-packages"})
    return files


def _code_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of non-blank, non-comment lines."""
    out, pos = [], 0
    for line in text.split("\n"):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def sample(files: list[pathlib.Path], mode: str, n: int, rng: random.Random):
    texts = [t for t in (read_source(p) for p in files) if t and t.strip()]
    lines = [_code_lines(t) for t in texts]
    weights = [len(x) for x in lines]
    out = []
    while len(out) < n:
        i = rng.choices(range(len(texts)), weights=weights)[0]
        text = texts[i]
        start, end = rng.choice(lines[i])
        line = text[start:end]
        indent = len(line) - len(line.lstrip())
        if mode == "whole_line":
            cursor = start + indent
        else:
            if end - (start + indent) < 2:
                continue
            cursor = rng.randrange(start + indent + 1, end)
        out.append((text[:cursor], text[end:], text[cursor:end]))
    return out


def evaluate(engine: EmbeddedEngine, cases, mode: str, latencies: list[float]) -> dict:
    shown = exact = ok = saved = total = 0
    for prefix, suffix, truth in cases:
        t0 = time.perf_counter()
        got = engine.complete(prefix, suffix, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        total += len(truth)
        if got:
            shown += 1
            exact += got == truth
            if truth.startswith(got):
                ok += 1
                saved += len(got)
    n = len(cases)
    return {
        "n": n,
        "shown": round(shown / n, 3),
        "exact": round(exact / n, 3),
        "acceptable": round(ok / n, 3),
        "acceptable_of_shown": round(ok / shown, 3) if shown else None,
        "chars_saved": round(saved / total, 3) if total else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", type=int, default=500, help="cursors per data set and mode")
    ap.add_argument("--cache-dir", type=pathlib.Path, default=None, help="default: a temp dir")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or pathlib.Path(tmp)
        trainer = EmbeddedEngine(cache_dir)
        t0 = time.perf_counter()
        trainer.ensure_trained()
        ready_s = time.perf_counter() - t0
        engine = EmbeddedEngine(cache_dir)  # a "restart": loads the on-disk tables
        t0 = time.perf_counter()
        engine.ensure_trained()
        load_s = time.perf_counter() - t0

        datasets = {
            "stdlib_heldout": EmbeddedEngine.held_out_files(),
            "third_party": third_party_files(),
        }
        rng = random.Random(args.seed)
        latencies: list[float] = []
        results: dict[str, dict] = {}
        for name, files in datasets.items():
            if not files:
                continue
            results[name] = {"files": len(files)}
            for mode in ("mid_line", "whole_line"):
                cases = sample(files, mode, args.samples, rng)
                results[name][mode] = evaluate(engine, cases, mode, latencies)
        lat = np.array(latencies)
        report = {
            "engine": engine.name,
            "model": engine.model_name,
            "python": sys.version.split()[0],
            "seed": args.seed,
            "samples_per_mode": args.samples,
            "first_ready_seconds": round(ready_s, 2),
            "first_engine_trained": trainer.train_runs == 1,
            "second_engine_trained": engine.train_runs == 1,
            "cache_load_seconds": round(load_s, 3),
            "results": results,
            "latency_ms": {
                "n": int(lat.size),
                "p50": round(float(np.percentile(lat, 50)), 2),
                "p90": round(float(np.percentile(lat, 90)), 2),
                "p99": round(float(np.percentile(lat, 99)), 2),
                "max": round(float(lat.max()), 2),
            },
        }
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
