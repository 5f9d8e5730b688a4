"""Training corpus: the Python standard library of the running interpreter.

Test suites are skipped, and a deterministic ~5 % of the remaining files (those
whose relative path hashes to 0 mod :data:`HOLDOUT_MOD`) is held out of training
so that ``bench/quality.py`` can measure on code the model never saw.

When the interpreter ships no stdlib source (e.g. a zipped or stripped stdlib),
the fallback corpus is the ``site-packages`` source, then the working directory.
"""

from __future__ import annotations

import os
import pathlib
import sysconfig
import zlib
from collections.abc import Iterable

HOLDOUT_MOD = 20
SKIP_PARTS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages"})
MIN_FILES = 50  # fewer source files than this: treat the source as absent
MAX_FILE_BYTES = 1_000_000


def stdlib_root() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def _python_files(root: pathlib.Path, skip: Iterable[str] = SKIP_PARTS) -> list[pathlib.Path]:
    if not root.is_dir():
        return []
    skip = frozenset(skip)
    out: list[pathlib.Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                p = pathlib.Path(dirpath, name)
                try:
                    if p.stat().st_size <= MAX_FILE_BYTES:
                        out.append(p)
                except OSError:
                    continue
    return out


def is_held_out(path: pathlib.Path, root: pathlib.Path) -> bool:
    rel = path.relative_to(root).as_posix()
    return zlib.crc32(rel.encode()) % HOLDOUT_MOD == 0


def stdlib_files() -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """(training files, held-out files) of the stdlib; both empty if there is no source."""
    root = stdlib_root()
    files = _python_files(root)
    if len(files) < MIN_FILES:
        return [], []
    train = [p for p in files if not is_held_out(p, root)]
    held = [p for p in files if is_held_out(p, root)]
    return train, held


def held_out_files() -> list[pathlib.Path]:
    """The stdlib files deliberately excluded from training (deterministic)."""
    return stdlib_files()[1]


def corpus_files() -> tuple[str, list[pathlib.Path]]:
    """(corpus tag, training files). The tag is part of the on-disk cache key."""
    train, _ = stdlib_files()
    if train:
        return "stdlib", train
    purelib = pathlib.Path(sysconfig.get_paths()["purelib"])
    files = _python_files(purelib, skip={"test", "tests"})
    if len(files) >= MIN_FILES:
        return "sitepkgs", files[:5000]
    return "workspace", _python_files(pathlib.Path.cwd(), skip=SKIP_PARTS | {".venv", "venv"})[
        :5000
    ]


def read_source(path: pathlib.Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
