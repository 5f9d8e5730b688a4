"""A completion looks its contexts up in the tables without copying them: a lookup key of
another dtype than the table's makes numpy convert the whole table first (megabytes per
lookup, the embedded engine's cost ten times over)."""

import tracemalloc

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
