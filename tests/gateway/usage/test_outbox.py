"""The durable outbox: commit before `record()` returns, group commit, the journal (durable
before the commit, replayed after a crash), shipping with retries, leases across processes, and
flushing on close."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.usage.outbox import Outbox, OutboxClosed
from codesuggest.gateway.usage.sinks import HttpSink, JsonlSink
from codesuggest.tokens import ManualClock
from support.polling import eventually


def event(n: int = 0, **fields) -> UsageEvent:
    return UsageEvent(
        name="code_suggestion_requested",
        global_user_id=f"user-{n % 7}",
        request_id=f"req-{n}",
        status="served",
        **fields,
    )


async def no_pending(outbox: Outbox) -> bool:
    return await outbox.pending() == 0


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT event_id, payload, delivered_at, lease_owner FROM outbox ORDER BY seq"
        ).fetchall()


def jsonl_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


async def test_record_returns_after_the_event_is_committed(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", JsonlSink(tmp_path / "u.jsonl"), ship=False)
    await outbox.start()
    try:
        e = event(1, language="python")
        await outbox.record(e)
        # A separate connection (another process would see the same) finds the row.
        stored = rows(tmp_path / "outbox.db")
        assert [r[0] for r in stored] == [e.event_id]
        assert json.loads(stored[0][1])["language"] == "python"
        assert stored[0][2] is None  # not delivered yet
    finally:
        await outbox.aclose()


async def test_concurrent_records_share_commits(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", JsonlSink(tmp_path / "u.jsonl"), ship=False)
    await outbox.start()
    try:
        events = [event(i) for i in range(500)]
        await asyncio.gather(*(outbox.record(e) for e in events))
        assert len(rows(tmp_path / "outbox.db")) == 500
        # Group commit: far fewer transactions (fsyncs) than events.
        assert outbox.commits < 250
    finally:
        await outbox.aclose()


NORMAL = {"ship": False, "synchronous": "NORMAL"}


def segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outbox.journal").glob("*.jsonl"))


async def test_with_normal_sync_an_event_is_durable_in_the_journal_before_sqlite_has_it(tmp_path):
    """Another process holding the write lock never blocks the event loop: `submit` is durable
    at once (its line is in the journal) and the row lands once the lock is free; `record`
    waits for the commit."""
    db = tmp_path / "outbox.db"
    outbox = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await outbox.start()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first, second = event(1), event(2)
        future = outbox.submit(first)
        assert future.done() and future.exception() is None
        [segment] = segments(tmp_path)
        assert first.event_id in segment.read_text()
        recorded = asyncio.ensure_future(outbox.record(second))
        await asyncio.sleep(0.05)  # the loop keeps running meanwhile
        assert not recorded.done()
        other.execute("COMMIT")
        await asyncio.wait_for(recorded, timeout=10)
        assert {r[0] for r in rows(db)} == {first.event_id, second.event_id}
    finally:
        other.close()
        await outbox.aclose()
    assert segments(tmp_path) == []  # every row committed: nothing left to replay


CRASHING_PROCESS = textwrap.dedent(
    """
    import asyncio, os, signal, sqlite3, sys
    from pathlib import Path
    from codesuggest.common.usage import UsageEvent
    from codesuggest.gateway.usage.outbox import Outbox
    from codesuggest.gateway.usage.sinks import JsonlSink

    async def main(db):
        sink = JsonlSink(db.with_name("u.jsonl"))
        outbox = Outbox(db, sink, ship=False, synchronous="NORMAL")
        await outbox.start()
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the writer thread cannot commit
        for i in range(50):
            e = UsageEvent(name="code_suggestion_requested", request_id=f"crash-{i}")
            outbox.submit(e).result()  # durable: the answer could leave now
        print("journaled", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(Path(sys.argv[1])))
    """
)


async def test_events_journaled_by_a_process_killed_before_its_commit_are_replayed(tmp_path):
    db = tmp_path / "outbox.db"
    command = [sys.executable, "-c", CRASHING_PROCESS, str(db)]
    crashed = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert crashed.returncode == -signal.SIGKILL and "journaled" in crashed.stdout, crashed.stderr
    assert rows(db) == []  # nothing reached SQLite
    [segment] = segments(tmp_path)
    with segment.open("ab") as cut:  # and a last line cut short by the crash
        cut.write(b'1700000000.0\t{"event_id": "cut-sh')
    outbox = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await outbox.start()
    try:
        stored = [json.loads(payload)["request_id"] for _, payload, _, _ in rows(db)]
        assert sorted(stored) == sorted(f"crash-{i}" for i in range(50))
    finally:
        await outbox.aclose()
    assert segments(tmp_path) == []


async def test_a_segment_a_live_process_holds_is_not_replayed_by_another(tmp_path):
    db = tmp_path / "outbox.db"
    first = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await first.start()
    e = event(1)
    await first.record(e)
    [held] = segments(tmp_path)
    second = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await second.start()  # replays what nobody holds
    try:
        assert held.exists()
        await first.aclose()
        assert not held.exists()
        assert [r[0] for r in rows(db)] == [e.event_id]
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_failed_commit_keeps_the_events_in_the_journal_for_a_replay(tmp_path):
    db = tmp_path / "outbox.db"
    outbox = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await outbox.start()
    lost, later = event(1), event(2)
    try:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE outbox")  # the writer's next INSERT cannot succeed
        with pytest.raises(OSError, match="usage outbox write failed"):
            await outbox.record(lost)
        outbox.submit(later).result()  # still durable: a new segment takes it
    finally:
        await outbox.aclose()
    assert len(segments(tmp_path)) == 2  # both kept, their rows not committed
    again = Outbox(db, JsonlSink(tmp_path / "u.jsonl"), **NORMAL)
    await again.start()  # the table made again, the journal replayed
    try:
        assert {r[0] for r in rows(db)} == {lost.event_id, later.event_id}
    finally:
        await again.aclose()
    assert segments(tmp_path) == []


async def test_same_event_recorded_twice_is_stored_once(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", JsonlSink(tmp_path / "u.jsonl"), ship=False)
    await outbox.start()
    try:
        e = event(1)
        await outbox.record(e)
        await outbox.record(e)
        assert len(rows(tmp_path / "outbox.db")) == 1
    finally:
        await outbox.aclose()


async def test_a_failed_write_fails_record_instead_of_losing_the_event(tmp_path):
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, JsonlSink(tmp_path / "u.jsonl"), ship=False)
    await outbox.start()
    try:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE outbox")  # the writer's next INSERT cannot succeed
        with pytest.raises(OSError, match="usage outbox write failed"):
            await outbox.record(event())
    finally:
        await outbox.aclose()


async def test_record_after_close_raises(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db", JsonlSink(tmp_path / "u.jsonl"))
    await outbox.start()
    await outbox.aclose()
    with pytest.raises(OutboxClosed):
        await outbox.record(event())


async def test_shipper_delivers_to_the_sink_and_marks_rows_delivered(tmp_path):
    sink_path = tmp_path / "u.jsonl"
    outbox = Outbox(
        tmp_path / "outbox.db", JsonlSink(sink_path), batch_size=50, flush_interval=0.05
    )
    await outbox.start()
    try:
        events = [event(i) for i in range(120)]
        for chunk in range(0, 120, 40):
            await asyncio.gather(*(outbox.record(e) for e in events[chunk : chunk + 40]))
        await eventually(lambda: len(jsonl_ids(sink_path)) == 120)
        assert sorted(jsonl_ids(sink_path)) == sorted(e.event_id for e in events)
        await eventually(lambda: no_pending(outbox))
        assert all(r[2] is not None and r[3] is None for r in rows(tmp_path / "outbox.db"))
    finally:
        await outbox.aclose()


async def test_close_flushes_what_is_pending(tmp_path):
    sink_path = tmp_path / "u.jsonl"
    # A long poll interval: only aclose() can ship these in time.
    outbox = Outbox(tmp_path / "outbox.db", JsonlSink(sink_path), flush_interval=3600)
    await outbox.start()
    await asyncio.sleep(0)  # let the shipper run its first (empty) round
    events = [event(i) for i in range(30)]
    await asyncio.gather(*(outbox.record(e) for e in events))
    await outbox.aclose()
    assert sorted(jsonl_ids(sink_path)) == sorted(e.event_id for e in events)


async def test_failed_deliveries_are_retried_with_backoff_until_acknowledged(
    tmp_path, fresh_collector
):
    fresh_collector.fail_next = 3
    outbox = Outbox(
        tmp_path / "outbox.db",
        HttpSink(fresh_collector.url),
        flush_interval=0.02,
        retry_initial=0.02,
        retry_max=0.1,
    )
    await outbox.start()
    try:
        events = [event(i) for i in range(10)]
        await asyncio.gather(*(outbox.record(e) for e in events))
        await eventually(lambda: len(fresh_collector.events) == 10)
        assert fresh_collector.requests >= 4  # three refusals, then the acknowledged batch
        assert fresh_collector.received == 10  # refused batches were not half-stored
        await eventually(lambda: outbox.consecutive_failures == 0)
        await eventually(lambda: no_pending(outbox))
    finally:
        await outbox.aclose()


async def test_events_the_sink_refuses_are_parked_without_holding_back_the_rest(
    tmp_path, fresh_collector
):
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, HttpSink(fresh_collector.url), batch_size=64, flush_interval=0.02)
    await outbox.start()
    try:
        good = [event(i) for i in range(40)]
        bad = [event(100 + i, language="poison") for i in range(2)]
        batch = good[:13] + bad[:1] + good[13:30] + bad[1:] + good[30:]
        await asyncio.gather(*(outbox.record(e) for e in batch))
        await eventually(lambda: len(fresh_collector.events) == 40)
        await eventually(lambda: no_pending(outbox))
        assert set(fresh_collector.events) == {e.event_id for e in good}
        with sqlite3.connect(path) as conn:
            parked = conn.execute(
                "SELECT event_id, last_error FROM outbox WHERE parked_at IS NOT NULL"
            ).fetchall()
        assert {p[0] for p in parked} == {e.event_id for e in bad}
        assert all("400" in p[1] for p in parked)
        assert outbox.consecutive_failures == 0
    finally:
        await outbox.aclose()


def test_backoff_grows_exponentially_and_is_capped(tmp_path):
    outbox = Outbox(tmp_path / "o.db", JsonlSink(tmp_path / "u"), retry_initial=1, retry_max=8)
    delays = [outbox.backoff(n) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1
    assert 1 <= delays[1] <= 2
    assert 2 <= delays[2] <= 4
    assert 4 <= delays[3] <= 8
    assert 4 <= delays[4] <= 8


async def test_close_with_the_sink_down_keeps_events_for_the_next_start(tmp_path, fresh_collector):
    fresh_collector.fail_next = 10**6
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, HttpSink(fresh_collector.url), flush_interval=0.02, close_timeout=0.2)
    await outbox.start()
    events = [event(i) for i in range(5)]
    await asyncio.gather(*(outbox.record(e) for e in events))
    await outbox.aclose()
    assert fresh_collector.events == {}
    assert all(r[2] is None and r[3] is None for r in rows(path))  # pending, not leased

    fresh_collector.fail_next = 0
    again = Outbox(path, HttpSink(fresh_collector.url), flush_interval=0.02)
    await again.start()
    try:
        await eventually(lambda: len(fresh_collector.events) == 5)
        assert set(fresh_collector.events) == {e.event_id for e in events}
    finally:
        await again.aclose()


async def test_rows_leased_by_a_crashed_shipper_are_delivered_after_the_lease(
    tmp_path, fresh_collector
):
    clock = ManualClock()
    path = tmp_path / "outbox.db"
    crashed = Outbox(path, HttpSink(fresh_collector.url), lease_seconds=30, clock=clock, ship=False)
    await crashed.start()
    events = [event(i) for i in range(8)]
    await asyncio.gather(*(crashed.record(e) for e in events))
    claimed = await asyncio.to_thread(crashed._claim)  # claims, then "dies" before delivering
    assert len(claimed) == 8

    survivor = Outbox(
        path, HttpSink(fresh_collector.url), lease_seconds=30, clock=clock, ship=False
    )
    await survivor.start()
    try:
        assert await survivor.ship_once() == 0  # the lease still holds
        clock.advance(31)
        assert await survivor.ship_once() == 8
        assert set(fresh_collector.events) == {e.event_id for e in events}
        assert await survivor.pending() == 0
    finally:
        await survivor.aclose()
        await crashed.aclose()


SHIPPER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from codesuggest.common.usage import UsageEvent
    from codesuggest.gateway.usage.outbox import Outbox
    from codesuggest.gateway.usage.sinks import JsonlSink

    async def main(db, sink, name, n):
        outbox = Outbox(Path(db), JsonlSink(Path(sink)), batch_size=25, flush_interval=0.01)
        await outbox.start()
        for i in range(n):
            e = UsageEvent(name="code_suggestion_requested", request_id=f"{name}-{i}")
            await outbox.record(e)
        while await outbox.pending():
            await asyncio.sleep(0.01)
        await outbox.aclose()
        print(outbox.delivered)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


def test_processes_sharing_one_outbox_deliver_each_event_once(tmp_path):
    db, sink = tmp_path / "outbox.db", tmp_path / "usage.jsonl"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SHIPPER_PROCESS, str(db), str(sink), name, "300"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b", "c")
    ]
    delivered = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        delivered.append(int(out.strip()))
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    ids = [line["event_id"] for line in lines]
    assert len(ids) == 900
    assert len(set(ids)) == 900  # leases are exclusive: no event shipped twice
    assert {line["request_id"] for line in lines} == {
        f"{name}-{i}" for name in "abc" for i in range(300)
    }
    assert sum(delivered) == 900
