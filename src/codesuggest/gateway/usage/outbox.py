"""A durable usage outbox: events are durable before `submit()`'s future resolves, and a shipper
delivers them to a sink in batches, at least once.

Durable means committed to SQLite (WAL) with `synchronous=FULL`: one writer thread per process
takes everything queued and commits it in one transaction (group commit, one fsync), then
resolves the callers' futures. With `synchronous=NORMAL` (the gateway's default: no fsync, a
commit survives the process dying but not the OS) the event loop appends the rows to this
process's journal segment instead (`journal.py`), one page-cache write, and the future is
resolved at once; the writer thread commits them to SQLite in the background and a journal left
behind by a process that died is replayed into the outbox. `record()` always waits for the
SQLite commit. The event loop never waits on a lock or an fsync.

Shipping is safe with several gateway processes sharing the data directory: a shipper claims
rows by setting a lease (`lease_owner`, `lease_until`) in one `BEGIN IMMEDIATE` transaction,
delivers them, then marks them delivered. A crash between claim and mark leaves the lease to
expire, after which any shipper claims the rows again, so sinks must dedupe by `event_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codesuggest.common.logs import get_logger
from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.usage import journal
from codesuggest.gateway.usage.journal import Row, Segment
from codesuggest.gateway.usage.sinks import Sink, SinkError
from codesuggest.tokens import Clock, SystemClock

log = get_logger("codesuggest.gateway.usage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    delivered_at REAL,
    parked_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq)
    WHERE delivered_at IS NULL AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_at)
    WHERE delivered_at IS NOT NULL;
"""

INSERT = (
    "INSERT INTO outbox (event_id, payload, created_at) VALUES (?, ?, ?) "
    "ON CONFLICT (event_id) DO NOTHING"
)

CLAIM = """
UPDATE outbox SET lease_owner = :owner, lease_until = :until, attempts = attempts + 1
WHERE seq IN (
    SELECT seq FROM outbox
    WHERE delivered_at IS NULL AND parked_at IS NULL AND next_attempt_at <= :now
      AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY seq LIMIT :limit)
RETURNING seq, payload, attempts
"""

_MAX_GROUP = 5000
_SEGMENT_ROWS = 10_000  # then the journal moves on to a new segment and the old one goes
_STOP = object()


class OutboxClosed(RuntimeError):
    """`record()` after `aclose()`."""


@dataclass(slots=True)
class _Write:
    rows: list[Row]
    future: asyncio.Future[None] | None  # resolved on commit; None: durable in `segment` already
    loop: asyncio.AbstractEventLoop
    segment: Segment | None = None


@dataclass(slots=True)
class _Flushed:
    """Resolved by the writer thread once everything queued before it is committed."""

    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the caller was cancelled; its rows are committed anyway
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, waiting on locks."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Outbox:
    """`UsageRecorder` with durable storage and a shipper; see the module docstring."""

    def __init__(
        self,
        path: Path,
        sink: Sink,
        *,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        lease_seconds: float = 30.0,
        sink_timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 60.0,
        keep_delivered: float = 3600.0,
        synchronous: str = "FULL",
        close_timeout: float = 5.0,
        clock: Clock | None = None,
        ship: bool = True,
    ) -> None:
        self.path = path
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.lease_seconds = lease_seconds
        self.sink_timeout = sink_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.keep_delivered = keep_delivered
        self.synchronous = synchronous
        self.close_timeout = close_timeout
        self.clock = clock or SystemClock()
        self.ship = ship
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.consecutive_failures = 0
        self.delivered = 0
        self.commits = 0  # write transactions (group commit shows here)
        self.journal = journal.directory_of(path) if synchronous != "FULL" else None
        self._segment: Segment | None = None  # the open journal segment (loop thread only)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._deferred: list[_Write] = []  # durable writes not yet handed to the writer
        self._writer: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn_lock = threading.Lock()  # the shipper's connection, used from worker threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._shipper: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._unannounced = 0  # rows committed since the shipper was last woken (writer thread)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._conn = await asyncio.to_thread(self._open)
        if self.journal is not None:
            self.journal.mkdir(mode=0o700, exist_ok=True)
            await self._replay_journal()
            self._segment = Segment(self.journal)
        writer_conn = await asyncio.to_thread(connect, self.path, self.synchronous)
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer_conn,), name="usage-outbox", daemon=True
        )
        self._writer.start()
        if self.ship:
            self._shipper = asyncio.create_task(self._ship_loop(), name="usage-shipper")

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path, self.synchronous)
        conn.executescript(SCHEMA)
        return conn

    async def aclose(self) -> None:
        """Commit everything recorded, ship what the sink takes within `close_timeout`, and
        leave the rest (unleased) for the next start."""
        if self._closed:
            return
        self._closed = True
        if self._segment is not None:  # deleted once its rows are committed
            self._put(self._segment)
            self._segment = None
        if self._writer is not None:
            self._put(_STOP)
            await asyncio.to_thread(self._writer.join)
        if self._shipper is not None:
            self._stopping = True
            self.poke()
            await self._shipper
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), timeout=self.close_timeout)
        await self.sink.aclose()
        if self._conn is not None:
            with self._conn_lock:
                self._conn.close()

    async def _maintain(self) -> None:
        """Now and then: drop rows delivered long ago, replay journals left behind."""
        if self.keep_delivered:
            await asyncio.to_thread(self._prune)
        if self.journal is not None:
            await self._replay_journal()

    async def _replay_journal(self) -> None:
        try:
            await asyncio.to_thread(self._replay)
        except Exception as exc:  # the segments stay for the next try
            log.warning("usage journal not replayed", error=f"{type(exc).__name__}: {exc}")

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            while await self.ship_once() > 0:
                pass

    # -- recording -------------------------------------------------------------------------

    async def record(self, *events: UsageEvent) -> None:
        """Return once the events are committed to the outbox (or raise if they could not be)."""
        await self._write(events, committed=True)

    def submit(self, *events: UsageEvent) -> asyncio.Future[None]:
        """Make the events durable; the future resolves once they are (or fails if they could
        not be). With the journal, that is before this returns, or it raises OSError."""
        return self._write(events, committed=False)

    def _write(self, events: tuple[UsageEvent, ...], *, committed: bool) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not events:
            future.set_result(None)
            return future
        if self._closed or self._writer is None or not self._writer.is_alive():
            raise OutboxClosed("the usage outbox is not running")
        now = self.clock.now()
        rows = [(e.event_id, e.model_dump_json(exclude_none=True), now) for e in events]
        segment = self._segment
        durable = False
        if segment is not None:
            if segment.rows >= _SEGMENT_ROWS or segment.keep or segment.torn:
                segment = self._next_segment(segment)
            segment.append(journal.encode(rows), len(rows))
            durable = not committed
        if durable:
            future.set_result(None)
            self._defer(_Write(rows, None, loop, segment), loop)
        else:
            self._put(_Write(rows, future, loop, segment))
        return future

    def _next_segment(self, full: Segment) -> Segment:
        """A new segment to append to; `full` is deleted once its rows are committed."""
        assert self.journal is not None
        self._segment = Segment(self.journal)
        self._put(full)
        return self._segment

    async def flushed(self) -> None:
        """Return once everything submitted so far is committed to SQLite (or failed to be)."""
        if self._writer is None or not self._writer.is_alive():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._put(_Flushed(future, loop))
        await future

    def _defer(self, write: _Write, loop: asyncio.AbstractEventLoop) -> None:
        """Hand a durable write to the writer once this task yields (its answer sent), so that
        the commit does not take the GIL from the answer on its way out; the writes of one
        turn of the loop go together."""
        self._deferred.append(write)
        if len(self._deferred) == 1:
            loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        deferred, self._deferred = self._deferred, []
        for write in deferred:
            self._queue.put(write)

    def _put(self, item: object) -> None:
        """Queue `item` for the writer after the writes deferred before it (order matters: a
        segment is closed, a flush settled, once the writes queued before it are committed)."""
        self._hand_over()
        self._queue.put(item)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                while len(items) < _MAX_GROUP:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in items:
                    stop = True
                    items = items[: items.index(_STOP)]
                self._take(conn, items)
        finally:
            conn.close()

    def _take(self, conn: sqlite3.Connection, items: list[object]) -> None:
        """Commit the queued writes in order; a segment or a flush marker waits for the writes
        queued before it."""
        writes: list[_Write] = []
        for item in items:
            if isinstance(item, _Write):
                writes.append(item)
                continue
            self._commit(conn, writes)
            writes = []
            if isinstance(item, Segment):
                item.close()
            elif isinstance(item, _Flushed):
                self._call(item.loop, _settle, [item.future], None)
        self._commit(conn, writes)

    def _commit(self, conn: sqlite3.Connection, writes: list[_Write]) -> None:
        if not writes:
            return
        rows = [row for write in writes for row in write.rows]
        error: BaseException | None = None
        try:
            self._insert(conn, rows)
        except Exception as exc:  # every waiting caller must hear about it, whatever it is
            error = OSError(f"usage outbox write failed: {type(exc).__name__}: {exc}")
            kept = {id(w.segment): w.segment for w in writes if w.segment is not None}
            for segment in kept.values():
                segment.keep = True  # its rows are replayed later (see `_replay`)
            where = "kept in the journal" if kept else "not stored"
            log.error("usage outbox write failed", error=str(error), events=where)
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for write in writes:
            if write.future is not None:
                by_loop.setdefault(write.loop, []).append(write.future)
        for loop, futures in by_loop.items():
            self._call(loop, _settle, futures, error)
        if error is None:
            self._unannounced += len(rows)
            if self._unannounced >= self.batch_size and self._loop is not None:
                self._unannounced = 0
                self._call(self._loop, self.poke)

    def _insert(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1

    @staticmethod
    def _call(
        loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object
    ) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(callback, *args)

    def _replay(self) -> None:
        """Commit journal segments no live process holds: those of processes that died, and
        this one's whose commit failed (worker thread)."""
        conn = self._conn
        assert self.journal is not None and conn is not None
        with self._conn_lock:
            journal.replay(self.journal, lambda rows: self._insert(conn, rows))

    # -- shipping --------------------------------------------------------------------------

    def poke(self) -> None:
        """Wake the shipper now (more than a batch is waiting, a test moved the clock, ...)."""
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        if self._wake.is_set():
            self._wake.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    def backoff(self, failures: int) -> float:
        """Exponential back-off with jitter: initial * 2^(failures-1), capped at `retry_max`."""
        delay = min(self.retry_max, self.retry_initial * 2 ** max(0, failures - 1))
        return delay * (0.5 + random.random() / 2)

    async def _ship_loop(self) -> None:
        rounds = 0
        while not self._stopping:
            try:
                shipped = await self.ship_once()
            except Exception as exc:
                self.consecutive_failures += 1
                delay = self.backoff(self.consecutive_failures)
                log.warning(
                    "usage delivery failed",
                    sink=self.sink.name,
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.consecutive_failures,
                    retry_in=round(delay, 3),
                )
                await self._sleep(delay)
                continue
            if shipped and self.consecutive_failures:
                log.info("usage delivery recovered", sink=self.sink.name)
                self.consecutive_failures = 0
            rounds += 1
            if rounds % 100 == 0:
                await self._maintain()
            if shipped < self.batch_size:
                await self._sleep(self.flush_interval)

    async def ship_once(self) -> int:
        """Claim one batch, deliver it, mark it delivered. Returns how many were delivered;
        raises (after releasing the batch for a later retry) if the sink did not acknowledge.

        A batch the sink refuses as permanently invalid is split in halves until the refused
        events are alone; those are parked (kept, with the error, never retried) so one bad
        event cannot hold back the others."""
        claimed = await asyncio.to_thread(self._claim)
        if not claimed:
            return 0
        delivered: list[int] = []
        parked: list[tuple[int, str]] = []
        try:
            await self._deliver(claimed, delivered, parked)
        except BaseException as exc:
            settled = set(delivered) | {seq for seq, _ in parked}
            rest = [seq for seq, _, _ in claimed if seq not in settled]
            attempts = max(a for _, _, a in claimed)
            retry = (
                rest,
                self.clock.now() + self.backoff(attempts),
                f"{type(exc).__name__}: {exc}",
            )
            await asyncio.shield(asyncio.to_thread(self._settle, delivered, parked, retry))
            raise
        await asyncio.shield(asyncio.to_thread(self._settle, delivered, parked, None))
        self.delivered += len(delivered)
        return len(delivered)

    async def _deliver(
        self,
        rows: list[tuple[int, str, int]],
        delivered: list[int],
        parked: list[tuple[int, str]],
    ) -> None:
        try:
            await asyncio.wait_for(
                self.sink.deliver([payload for _, payload, _ in rows]), timeout=self.sink_timeout
            )
        except SinkError as exc:
            if not exc.permanent:
                raise
            if len(rows) == 1:
                log.error("usage event parked: the sink refuses it", seq=rows[0][0], error=str(exc))
                parked.append((rows[0][0], str(exc)[:500]))
                return
            half = len(rows) // 2
            await self._deliver(rows[:half], delivered, parked)
            await self._deliver(rows[half:], delivered, parked)
            return
        delivered.extend(seq for seq, _, _ in rows)

    def _transaction(self, work: Callable[[sqlite3.Connection], list]) -> list:
        assert self._conn is not None
        conn = self._conn
        with self._conn_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return rows

    def _claim(self) -> list[tuple[int, str, int]]:
        now = self.clock.now()
        params = {
            "owner": self.owner,
            "until": now + self.lease_seconds,
            "now": now,
            "limit": self.batch_size,
        }
        return sorted(self._transaction(lambda conn: conn.execute(CLAIM, params).fetchall()))

    def _settle(
        self,
        delivered: list[int],
        parked: list[tuple[int, str]],
        retry: tuple[list[int], float, str] | None,
    ) -> None:
        """In one transaction: mark delivered rows, park refused ones, release the rest (only
        rows still leased by us) for a retry at the given time."""
        now = self.clock.now()

        def work(conn: sqlite3.Connection) -> list:
            if delivered:
                conn.execute(
                    "UPDATE outbox SET delivered_at = ?, lease_owner = NULL, lease_until = NULL "
                    "WHERE seq IN (SELECT value FROM json_each(?))",
                    (now, json.dumps(delivered)),
                )
            if parked:
                conn.executemany(
                    "UPDATE outbox SET parked_at = ?, last_error = ?, lease_owner = NULL, "
                    "lease_until = NULL WHERE seq = ?",
                    [(now, error, seq) for seq, error in parked],
                )
            if retry is not None and retry[0]:
                seqs, retry_at, error = retry
                conn.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, "
                    "next_attempt_at = ?, last_error = ? WHERE lease_owner = ? "
                    "AND delivered_at IS NULL AND seq IN (SELECT value FROM json_each(?))",
                    (retry_at, error[:500], self.owner, json.dumps(seqs)),
                )
            return []

        self._transaction(work)

    def _prune(self) -> None:
        cutoff = self.clock.now() - self.keep_delivered
        self._transaction(
            lambda conn: conn.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", (cutoff,)
            ).fetchall()
        )

    # -- inspection ------------------------------------------------------------------------

    async def pending(self) -> int:
        """Events recorded but not yet acknowledged by the sink (all processes)."""
        await self.flushed()

        def count() -> int:
            assert self._conn is not None
            with self._conn_lock:
                sql = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND parked_at IS NULL"
                return self._conn.execute(sql).fetchone()[0]

        return await asyncio.to_thread(count)
