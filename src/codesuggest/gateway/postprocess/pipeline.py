"""The post-processing every provider's output goes through, stage by stage, each timed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from codesuggest.gateway.postprocess.brackets import balance_brackets
from codesuggest.gateway.postprocess.cleanup import drop_comment_only, strip_trailing_whitespace
from codesuggest.gateway.postprocess.context import EditContext
from codesuggest.gateway.postprocess.scope import cut_to_scope, strip_fences
from codesuggest.gateway.postprocess.suffix import strip_suffix_overlap

Stage = Callable[[str, EditContext], str]

# Order matters: unwrap, cut to the wanted scope, then remove what the editor already has,
# fix brackets, and clean up last so that emptiness is judged on the final text.
STAGES: tuple[tuple[str, Stage], ...] = (
    ("fences", strip_fences),
    ("scope", cut_to_scope),
    ("suffix", strip_suffix_overlap),
    ("brackets", balance_brackets),
    ("whitespace", strip_trailing_whitespace),
    ("comments", drop_comment_only),
)


@dataclass(slots=True)
class Processed:
    text: str
    timings: dict[str, float] = field(default_factory=dict)


def postprocess(
    text: str, ctx: EditContext, stages: tuple[tuple[str, Stage], ...] = STAGES
) -> Processed:
    timings: dict[str, float] = {}
    for name, stage in stages:
        started = time.perf_counter()
        text = stage(text, ctx)
        timings[name] = time.perf_counter() - started
        if not text:
            break
    if not text.strip():
        text = ""
    return Processed(text, timings)
