"""A data directory only its owner can read: it holds databases, keys, secrets and logs.

`make_private(path)` creates the directory (0700) or tightens an existing one, its
subdirectories to 0700 and its files to 0600, and sets the process umask to 077 so that what
the process creates afterwards (SQLite files and journals, logs, outboxes) is private too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private(path: Path) -> Path:
    os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            _tighten(Path(root) / name)
    return path


def _tighten(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # removed meanwhile (e.g. a SQLite journal)
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        return
    wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
    if stat.S_IMODE(info.st_mode) & ~wanted:
        os.chmod(path, stat.S_IMODE(info.st_mode) & wanted)
