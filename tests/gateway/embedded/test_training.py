import platform
import threading

from codesuggest.gateway.embedded import EmbeddedEngine, corpus
from codesuggest.gateway.embedded import engine as engine_mod


def test_identity(engine):
    assert engine.name == "embedded"
    assert engine.model_name == "kn6-stdlib"


def test_tables_cached_on_disk_and_reloaded_without_training(engine, cache_dir):
    path = cache_dir / f"kn6-py{platform.python_version()}.npz"
    assert path.is_file()
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]
    before = engine_mod.TRAINING_RUNS
    second = EmbeddedEngine(cache_dir=cache_dir)
    second.ensure_trained()
    assert second.train_runs == 0
    assert second.loaded_from_cache
    assert engine_mod.TRAINING_RUNS == before
    assert second.complete("import os\nos.path.jo", "") == "in("


def test_held_out_files_are_not_trained_on():
    train, held = corpus.stdlib_files()
    assert held, "expected a held-out share of the stdlib"
    assert not set(train) & set(held)
    assert set(EmbeddedEngine.held_out_files()) == set(held)
    assert 0.02 < len(held) / (len(train) + len(held)) < 0.1
    assert not any("test" in p.parts or "tests" in p.parts for p in train)


def test_concurrent_first_calls_train_once(tmp_path):
    eng = EmbeddedEngine(cache_dir=tmp_path)
    before = engine_mod.TRAINING_RUNS
    barrier = threading.Barrier(8)
    results = [None] * 8

    def worker(i):
        barrier.wait()
        results[i] = eng.complete("import os\nos.path.jo", "")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert eng.train_runs == 1
    assert engine_mod.TRAINING_RUNS == before + 1
    assert results == ["in("] * 8


def test_corrupt_cache_file_is_retrained(tmp_path):
    eng = EmbeddedEngine(cache_dir=tmp_path)
    eng.cache_path().write_bytes(b"not an npz")
    eng.ensure_trained()
    assert eng.train_runs == 1 and not eng.loaded_from_cache
    assert EmbeddedEngine(cache_dir=tmp_path).complete("from collections import namedt", "") == (
        "uple"
    )
