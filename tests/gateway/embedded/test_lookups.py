"""The embedded engine's lookups cost what a lookup should: no table copied per lookup (a
key of another dtype than the table's makes numpy convert the whole table first, megabytes
each time) and no selection among a context's thousands of successors done twice."""

import tracemalloc

import numpy as np
import pytest

CASES = [
    ("import os\n\n\ndef read_file(path):\n    with open(path) as f:\n        return f.", "\n"),
    ("import os\nos.path.jo", ""),
    ("for key, value in d.", ""),
]


@pytest.mark.parametrize(("prefix", "suffix"), CASES)
def test_a_completion_allocates_less_than_one_context_table(engine, prefix, suffix):
    model = engine._model
    smallest = min(model.ck[n].nbytes for n in range(2, 7))
    assert smallest > 250_000  # the stdlib tables: a copy of any of them would show
    assert engine.complete(prefix, suffix)  # a real completion, several lookups deep
    tracemalloc.start()
    try:
        engine.complete(prefix, suffix)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < smallest, f"a completion allocated {peak} bytes at its peak"


def test_a_contexts_top_successors_are_selected_once(engine, monkeypatch):
    prefix, suffix = CASES[0]  # `f.` has thousands of successors
    first = engine.complete(prefix, suffix)
    selections = []
    real = np.argpartition

    def counting(*args, **kwargs):
        selections.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "argpartition", counting)
    assert engine.complete(prefix, suffix) == first
    assert selections == []
