"""Revoked user tokens: "tokens of user U of instance I issued before T are void".

Instances push these (user_token_revocations.py); the gateway keeps each for one token lifetime
after T (by then every token it voids has expired anyway). The hot path asks `is_revoked`, a
dict lookup in memory: no network call per request.

Where the entries are shared, so every process refuses the same tokens:
- `RedisBackend` (`redis_url`): all replicas. A push is written to a sorted set scored by T,
  with a version counter.
- `FileBackend` (no Redis): the processes of one machine (`serve --workers N`), through a
  SQLite file in the data directory; it also keeps revocations across a restart.

Every process copies the shared entries into memory in the background every `sync_interval`
seconds (one cheap version read when nothing changed), so a revocation reaches all of them
within that interval. A process keeps what it has when the backend fails, and merges rather
than replaces, so a Redis restart that lost data does not bring a revoked token back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from anyio import to_thread

from codesuggest.common.logs import get_logger
from codesuggest.common.tasks import cancel
from codesuggest.tokens import Clock

log = get_logger("codesuggest.gateway.revocations")

Key = tuple[str, str]
"""(instance id, global user id)"""


class RevocationStoreUnavailable(Exception):
    """The shared store did not take the push: the instance retries it."""


class Backend(Protocol):
    async def add(
        self, key: Key, issued_before: int, push_id: str, now: float, retention: float
    ) -> bool:
        """Store the entry; False when `push_id` of this instance was stored before."""

    async def version(self) -> object:
        """Changes whenever another process added an entry."""

    async def entries(self, horizon: float) -> dict[Key, int]:
        """Every entry with T at or after `horizon` (older ones may be dropped)."""

    async def aclose(self) -> None: ...


class RedisBackend:
    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.set = f"{prefix}revocations"
        self.version_key = f"{prefix}revocations:version"
        self.push_prefix = f"{prefix}revocation-push:"

    async def add(
        self, key: Key, issued_before: int, push_id: str, now: float, retention: float
    ) -> bool:
        push_key = f"{self.push_prefix}{key[0]}:{push_id}"
        if not await self.redis.set(push_key, b"1", nx=True, ex=max(int(retention), 1)):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.set, {f"{key[0]} {key[1]}": issued_before}, gt=True)
            pipe.incr(self.version_key)
            await pipe.execute()
        return True

    async def version(self) -> object:
        return await self.redis.get(self.version_key)

    async def entries(self, horizon: float) -> dict[Key, int]:
        await self.redis.zremrangebyscore(self.set, "-inf", f"({horizon}")
        found: dict[Key, int] = {}
        for member, score in await self.redis.zrange(self.set, 0, -1, withscores=True):
            instance_id, _, user_id = member.decode().partition(" ")
            found[(instance_id, user_id)] = int(score)
        return found

    async def aclose(self) -> None:
        await self.redis.aclose()


class FileBackend:
    """A SQLite file; `PRAGMA data_version` tells a process that another one wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """Opened on first use (the app's start), not when the app is built."""
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            with conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS revocations (instance_id TEXT NOT NULL, "
                    "user_id TEXT NOT NULL, issued_before INTEGER NOT NULL, "
                    "PRIMARY KEY (instance_id, user_id))"
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS pushes (id TEXT PRIMARY KEY, expires REAL NOT NULL)"
                )
            self._conn = conn
        return self._conn

    def _add(
        self, key: Key, issued_before: int, push_id: str, now: float, retention: float
    ) -> bool:
        with self._lock, self._db:
            self._db.execute("DELETE FROM pushes WHERE expires < ?", (now,))
            seen = self._db.execute(
                "INSERT OR IGNORE INTO pushes (id, expires) VALUES (?, ?)",
                (f"{key[0]}:{push_id}", now + retention),
            )
            if seen.rowcount == 0:
                return False
            self._db.execute(
                "INSERT INTO revocations (instance_id, user_id, issued_before) VALUES (?, ?, ?) "
                "ON CONFLICT (instance_id, user_id) DO UPDATE SET issued_before = "
                "max(issued_before, excluded.issued_before)",
                (key[0], key[1], issued_before),
            )
            return True

    async def add(
        self, key: Key, issued_before: int, push_id: str, now: float, retention: float
    ) -> bool:
        return await to_thread.run_sync(self._add, key, issued_before, push_id, now, retention)

    def _version(self) -> object:
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    async def version(self) -> object:
        return self._version()  # a pragma on an open connection: no I/O worth a thread

    def _entries(self, horizon: float) -> dict[Key, int]:
        with self._lock, self._db:
            self._db.execute("DELETE FROM revocations WHERE issued_before < ?", (horizon,))
            rows = self._db.execute("SELECT instance_id, user_id, issued_before FROM revocations")
            return {(i, u): t for i, u, t in rows}

    async def entries(self, horizon: float) -> dict[Key, int]:
        return await to_thread.run_sync(self._entries, horizon)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Revocations:
    def __init__(
        self, clock: Clock, retention: float, backend: Backend, *, sync_interval: float = 2.0
    ) -> None:
        self.clock = clock
        self.retention = retention
        self.backend = backend
        self.sync_interval = sync_interval
        self._void: dict[Key, int] = {}
        self._version: object = None
        self._task: asyncio.Task[None] | None = None

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """The hot path: True when the user token's `iat` is before its user's revocation."""
        issued_before = self._void.get((claims.get("gitlab_instance_id"), claims["sub"]))  # type: ignore[arg-type]
        return issued_before is not None and claims["iat"] < issued_before

    async def add(self, instance_id: str, user_id: str, issued_before: int, push_id: str) -> bool:
        """Store one revocation; False when this push was received before (a replay, or a
        retry whose answer was lost: either way nothing changes)."""
        try:
            stored = await self.backend.add(
                (instance_id, user_id), issued_before, push_id, self.clock.now(), self.retention
            )
        except (aioredis.RedisError, sqlite3.Error, OSError) as exc:
            raise RevocationStoreUnavailable(type(exc).__name__) from exc
        if stored:
            self._merge({(instance_id, user_id): issued_before})
        return stored

    def _merge(self, entries: Mapping[Key, int]) -> None:
        """Keep the later time per user (the hot path and this both run on the event loop)."""
        void = self._void
        for key, issued_before in entries.items():
            if issued_before > void.get(key, 0):
                void[key] = issued_before

    def __len__(self) -> int:
        return len(self._void)

    async def sync(self) -> None:
        """Drop expired entries; copy the backend's if another process changed them."""
        horizon = self.clock.now() - self.retention
        if any(t < horizon for t in self._void.values()):
            self._void = {k: t for k, t in self._void.items() if t >= horizon}
        version = await self.backend.version()
        if version is None or version != self._version:
            self._merge(await self.backend.entries(horizon))
            self._version = version

    async def start(self) -> None:
        try:
            await self.sync()
        except (aioredis.RedisError, sqlite3.Error, OSError) as exc:
            log.warning("revocation store unavailable at start", error=type(exc).__name__)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.sync()
                if failing:
                    log.info("revocation store is back")
                failing = False
            except (aioredis.RedisError, sqlite3.Error, OSError) as exc:
                if not failing:
                    log.warning("revocation store unavailable", error=type(exc).__name__)
                failing = True

    async def aclose(self) -> None:
        await cancel(self._task)
        self._task = None
        await self.backend.aclose()


def make_revocations(
    clock: Clock,
    retention: float,
    *,
    redis_url: str | None,
    prefix: str,
    data_dir: Path,
    sync_interval: float,
) -> Revocations:
    backend: Backend = (
        RedisBackend(redis_url, prefix) if redis_url else FileBackend(data_dir / "revocations.db")
    )
    return Revocations(clock, retention, backend, sync_interval=sync_interval)
