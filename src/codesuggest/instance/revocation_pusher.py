"""Delivering the revocation outbox to the gateway.

Every instance server runs a `RevocationPusher`: it sends each undelivered row, authenticated
like a mint (self-managed: the portal's instance token; SaaS: the instance's own signed token),
and retries with back-off until the gateway takes it. A 409 (the gateway has it already) counts
as delivered, so several instance processes may push the same row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
from anyio import to_thread
from sqlalchemy import delete, select

from codesuggest.common.logs import get_logger
from codesuggest.common.tasks import cancel
from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.identity import global_user_id
from codesuggest.instance.instance_tokens import InstanceTokens
from codesuggest.instance.models import RevocationOutbox, utc
from codesuggest.instance.revocations import KEEP_AFTER
from codesuggest.instance.store import Store, application_settings
from codesuggest.tokens import Clock

log = get_logger("codesuggest.instance.revocations")

PUSH_PATH = "/ai/v1/code/user_token_revocations"
PRUNE_EVERY = 600.0


@dataclass(frozen=True)
class Push:
    row_id: int
    body: dict[str, object]


class RevocationPusher:
    """Delivers the outbox to the gateway: woken at once by `wake()` (a change in this process),
    and every `poll_interval` for rows other processes wrote (the CLI, other servers)."""

    def __init__(
        self,
        store: Store,
        instance_tokens: InstanceTokens,
        http: Callable[[], httpx.AsyncClient | None],
        clock: Clock,
        *,
        poll_interval: float = 1.0,
        retry_initial: float = 1.0,
        retry_max: float = 10.0,
        timeout: float = 3.0,
    ) -> None:
        self.store = store
        self.instance_tokens = instance_tokens
        self.http = http
        self.clock = clock
        self.poll_interval = poll_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.timeout = timeout
        self.delivered = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = -PRUNE_EVERY

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run())

    def wake(self) -> None:
        """Safe from any thread (admin functions run in worker threads)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def aclose(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.push_due()
            except Exception as exc:  # the loop must survive a database hiccup
                log.warning("revocation push round failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def _prune(self) -> None:
        """Delivered rows older than KEEP_AFTER go (at most every PRUNE_EVERY seconds: a
        DELETE takes SQLite's write lock even when it finds nothing)."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        now = utc(self.clock.now())
        with self.store.session() as session:
            session.execute(
                delete(RevocationOutbox).where(
                    RevocationOutbox.delivered_at.is_not(None),
                    RevocationOutbox.created_at < now - KEEP_AFTER,
                )
            )

    def _due(self) -> tuple[list[Push], str | None, InstanceInfo | None]:
        self._prune()
        now = utc(self.clock.now())
        with self.store.session() as session:
            rows = session.scalars(
                select(RevocationOutbox)
                .where(
                    RevocationOutbox.delivered_at.is_(None),
                    RevocationOutbox.next_attempt_at <= now,
                )
                .order_by(RevocationOutbox.id)
                .limit(100)
            ).all()
            if not rows:
                return [], None, None
            info = InstanceInfo.of(application_settings(session))
            token = self.instance_tokens.for_gateway(session, info)
            pushes = [
                Push(
                    row.id,
                    {
                        "id": row.push_id,
                        "instance_id": info.instance_uuid,
                        "global_user_id": global_user_id(
                            self.store.secret, info.instance_uuid, row.user_id
                        ),
                        "issued_before": row.issued_before,
                    },
                )
                for row in rows
            ]
        return pushes, token, info

    def _settle(self, row_id: int, error: str | None) -> None:
        now = utc(self.clock.now())
        with self.store.session() as session:
            row = session.get(RevocationOutbox, row_id)
            if row is None or row.delivered_at is not None:
                return
            if error is None:
                row.delivered_at = now
                return
            row.attempts += 1
            delay = min(self.retry_initial * 2 ** (row.attempts - 1), self.retry_max)
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = error[:255]

    async def push_due(self) -> int:
        """One round: push every due row once. Returns how many landed."""
        pushes, token, info = await to_thread.run_sync(self._due)
        landed = 0
        for push in pushes:
            assert info is not None
            error = await self._send(push, token, info)
            await to_thread.run_sync(self._settle, push.row_id, error)
            if error is None:
                landed += 1
                self.delivered += 1
            else:
                log.info("revocation push not delivered; will retry", error=error)
        return landed

    async def _send(self, push: Push, token: str | None, info: InstanceInfo) -> str | None:
        """None when the gateway has the revocation; otherwise why not."""
        if token is None:
            return "no instance token to authenticate the push"
        http = self.http()
        if http is None:
            return "the instance is not started"
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Gitlab-Authentication-Type": "oidc",
            "X-Gitlab-Instance-Id": info.instance_uuid,
            "X-Gitlab-Realm": info.realm,
            "X-Gitlab-Host-Name": info.host_name,
        }
        try:
            response = await http.post(
                info.edge_base + PUSH_PATH, json=push.body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            return f"gateway unreachable: {type(exc).__name__}"
        if response.status_code in (200, 201, 409):
            return None
        return f"gateway answered HTTP {response.status_code}"
