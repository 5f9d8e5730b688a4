"""The outbox's journal (with `synchronous=NORMAL`): an event is durable once its line is appended
to its process's open journal segment, one `write()` to the page cache, which survives the
process dying as a WAL commit without fsync does. The outbox's writer thread then commits the
rows to SQLite off the event loop and deletes a segment once all of its rows are committed.

Each segment is locked (`flock`) by the process appending to it for as long as it is open, so a
segment nobody holds belongs to a process that died (or kept it after a failed commit):
`replay()` commits its rows and deletes it. Rows are inserted by `event_id`, so a segment
replayed twice, or whose rows were committed already, stores each event once.

A line is `<created_at>\\t<payload JSON>\\n`. A line cut short by a crash mid-write belongs to a
request that was never answered; replay skips it (and says so in the log).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from codesuggest.common.logs import get_logger

log = get_logger("codesuggest.gateway.usage")

Row = tuple[str, str, float]  # (event_id, payload, created_at), as the outbox table takes them

SUFFIX = ".jsonl"
_OPENING = ".opening"
_REPLAY_BATCH = 1000
_STALE_OPENING = 60.0  # seconds: far longer than making a segment takes


def directory_of(outbox: Path) -> Path:
    """`usage-outbox.db` journals in `usage-outbox.journal/` beside it."""
    return outbox.with_name(outbox.stem + ".journal")


def encode(rows: list[Row]) -> bytes:
    return "".join(f"{created!r}\t{payload}\n" for _, payload, created in rows).encode()


class Segment:
    """The segment a process appends to (loop thread only), locked while it is open.

    Made under a temporary name and renamed once locked, so `replay()` never takes a segment
    between its creation and its lock."""

    def __init__(self, directory: Path) -> None:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        opening = directory / f"{name}{_OPENING}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self.fd = os.open(opening, flags, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.path = directory / f"{name}{SUFFIX}"
            os.rename(opening, self.path)
        except BaseException:
            os.close(self.fd)
            opening.unlink(missing_ok=True)
            raise
        self.rows = 0
        self.keep = False  # a commit of its rows failed: leave it for a replay
        self.torn = False  # a write failed part-way: append no more

    def append(self, data: bytes, rows: int) -> None:
        """Write `data` whole (raises OSError if the disk refuses it)."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            self.torn = True
            raise
        self.rows += rows

    def close(self) -> None:
        """Delete the segment unless it must be replayed, then let go of its lock."""
        if not self.keep:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _rows(data: bytes, path: Path) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line:
            continue
        try:
            created, _, payload = line.decode().partition("\t")
            event_id = json.loads(payload)["event_id"]
            rows.append((str(event_id), payload, float(created)))
        except (ValueError, KeyError, TypeError):
            log.warning("usage journal line skipped: cut short", segment=path.name, line=number)
    return rows


@contextlib.contextmanager
def _unheld(path: Path) -> Iterator[bool]:
    """Lock `path` if no live process holds it; yields whether it did (False: held, or gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def replay(directory: Path, commit: Callable[[list[Row]], None]) -> int:
    """Commit the rows of every segment no live process holds, then delete it (a failing
    `commit` raises and leaves the segment for the next replay). Returns the rows replayed."""
    replayed = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        with _unheld(path) as ours:
            if not ours:
                continue
            rows = _rows(path.read_bytes(), path)
            for start in range(0, len(rows), _REPLAY_BATCH):
                commit(rows[start : start + _REPLAY_BATCH])
            path.unlink(missing_ok=True)
            replayed += len(rows)
    for path in directory.glob(f"*{_OPENING}"):  # a process died while making a segment
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime > _STALE_OPENING:
                path.unlink()
    if replayed:
        log.info("usage journal replayed", events=replayed)
    return replayed
