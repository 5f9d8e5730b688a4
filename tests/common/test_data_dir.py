"""common.data_dir: a data directory, new or existing, ends up 0700 with 0600 files."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from codesuggest.common.data_dir import make_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_an_existing_open_directory_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    (data / "logs" / "portal.log").write_text("x")
    (data / "portal.db").write_text("x")
    os.chmod(data, 0o755)
    os.chmod(data / "portal.db", 0o644)
    make_private(data)
    assert _mode(data) == 0o700
    assert _mode(data / "logs") == 0o700
    assert _mode(data / "logs" / "portal.log") == 0o600
    assert _mode(data / "portal.db") == 0o600


def test_files_created_afterwards_are_private(tmp_path: Path) -> None:
    data = make_private(tmp_path / "new" / "data")
    assert _mode(data) == 0o700
    sqlite3.connect(data / "instance.db").execute("create table t (x)").connection.close()
    (data / "gateway.log").write_text("line")
    (data / "outbox").mkdir()
    assert _mode(data / "instance.db") == 0o600
    assert _mode(data / "gateway.log") == 0o600
    assert _mode(data / "outbox") == 0o700
