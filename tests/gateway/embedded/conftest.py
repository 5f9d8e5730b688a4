import pathlib

import pytest

from codesuggest.gateway.embedded import EmbeddedEngine


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("embedded-cache")


@pytest.fixture(scope="session")
def engine(cache_dir) -> EmbeddedEngine:
    """Trained once per test session; the tables land in ``cache_dir``."""
    eng = EmbeddedEngine(cache_dir=cache_dir)
    eng.ensure_trained()
    return eng
