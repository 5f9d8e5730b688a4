"""The instance as a usage sink: it takes the batches of events the gateway ships, each with a
token the gateway signs (`iss` = the gateway's service name, `aud` = this instance's URL,
`purpose` = `common.usage.TOKEN_PURPOSE`) and verified with the keys the gateway publishes;
stores them idempotently by `event_id` in `usage_events` (`models.py`); and sums them up by the
rules of `common.usage.REPORT`. Its routes are `routes/usage.py`; the instance's context starts
and closes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from codesuggest.common.usage import (
    FIELD_LIMITS,
    REPORT,
    REPORT_COLUMNS,
    TOKEN_PURPOSE,
    Column,
    UsageEvent,
    merge,
)
from codesuggest.instance.models import usage_events
from codesuggest.instance.settings import InstanceSettings
from codesuggest.tokens import Clock, KeySource, PublicKey, RemoteKeySet, SystemClock, Verifier
from codesuggest.tokens.errors import TokenError

MAX_BATCH = 5000
MAX_INT = 2**31 - 1  # the columns are 32-bit integers on every database
DAY_MS = 86_400_000.0


def _storable_time(value: datetime) -> datetime:
    """A time whose UTC form exists (`0001-01-01T00:00:00+14:00` has none)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the timestamp is out of range") from None
    return value


class IncomingEvent(UsageEvent):
    """An event as the gateway ships it: `event_id` and `timestamp` required, unknown fields
    ignored, and text longer than its column cut to size: an over-long user agent must not make
    the whole batch invalid (the gateway would park it, and reports would lose it)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=64)
    timestamp: Annotated[datetime, AfterValidator(_storable_time)]
    # What the columns can hold: a count of 2**63 or a latency of NaN never reaches the database.
    latency_ms: float | None = Field(default=None, ge=0, le=DAY_MS)
    suggestion_chars: int | None = Field(default=None, ge=0, le=MAX_INT)
    count: int = Field(default=1, ge=0, le=MAX_INT)

    @model_validator(mode="before")
    @classmethod
    def _clip(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: value[: FIELD_LIMITS[key]]
            if key in FIELD_LIMITS and isinstance(value, str)
            else value
            for key, value in data.items()
        }


class EventBatch(BaseModel):
    events: list[IncomingEvent] = Field(max_length=MAX_BATCH)


class _AsIssuer:
    """Presents a key source fetched from the gateway's URL under the issuer name its tokens
    carry (`gitlab-ai-gateway` is a service name, not a URL)."""

    def __init__(self, source: KeySource, issuer: str) -> None:
        self.source = source
        self.issuer = issuer

    @property
    def ready(self) -> bool:
        return self.source.ready

    @property
    def reachable(self) -> bool:
        return self.source.reachable

    def get(self, kid: str) -> PublicKey | None:
        return self.source.get(kid)

    async def lookup_unknown(self, kid: str) -> PublicKey | None:
        return await self.source.lookup_unknown(kid)


def _naive_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def _sum(column: Column) -> Any:
    """The SQL of one report column (`common.usage.Column.value`, summed)."""
    t = usage_events.c
    condition = t.name == column.event
    if column.status is not None:
        condition = and_(condition, t.status == column.status)
    if column.status_prefix is not None:
        condition = and_(condition, t.status.like(column.status_prefix + "%"))
    if column.path is not None:
        condition = and_(condition, t.path == column.path)
    value = t.count if column.weighted else 1
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


class UsageSink:
    def __init__(
        self,
        engine: Engine,
        *,
        audience: str,
        gateway_keys: KeySource,
        gateway_issuer: str,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.engine = engine
        self.audience = audience.rstrip("/")
        self.clock = clock or SystemClock()
        self.gateway_keys = gateway_keys
        self.verifier = Verifier(
            [_AsIssuer(gateway_keys, gateway_issuer)], self.audience, clock=self.clock
        )
        self._http = http

    @classmethod
    def from_settings(
        cls, settings: InstanceSettings, engine: Engine, clock: Clock | None = None
    ) -> UsageSink:
        """Audience = the instance's `url`, gateway keys from `gateway_url`, issuer =
        `gateway_audience` (the gateway's service name)."""
        http = httpx.AsyncClient(timeout=10)
        keys = RemoteKeySet(settings.gateway_url, http, clock=clock)
        return cls(
            engine,
            audience=settings.url,
            gateway_keys=keys,
            gateway_issuer=settings.gateway_audience,
            clock=clock,
            http=http,
        )

    async def start(self) -> None:
        if isinstance(self.gateway_keys, RemoteKeySet):
            self.gateway_keys.start()

    async def aclose(self) -> None:
        if isinstance(self.gateway_keys, RemoteKeySet):
            await self.gateway_keys.aclose()
        if self._http is not None:
            await self._http.aclose()

    async def authenticate(self, authorization: str | None) -> None:
        """Raises `TokenError` unless the bearer token is a gateway usage token for us."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("no bearer token", reason="missing")
        claims = await self.verifier.verify(token.strip())
        if claims.get("purpose") != TOKEN_PURPOSE:
            raise TokenError("not a usage token", reason="wrong_purpose")

    def store(self, events: Sequence[IncomingEvent]) -> tuple[int, int]:
        """Insert events not stored yet; returns (stored, duplicates). Safe under concurrent
        deliveries of the same batch (ON CONFLICT DO NOTHING)."""
        unique = {e.event_id: e for e in events}
        if not unique:
            return 0, 0
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            known: set[str] = set(
                conn.scalars(
                    select(usage_events.c.event_id).where(usage_events.c.event_id.in_(unique))
                )
            )
            rows = []
            for event in unique.values():
                if event.event_id in known:
                    continue
                occurred = _naive_utc(event.timestamp)
                row = event.model_dump(exclude={"timestamp"})
                rows.append(
                    row
                    | {
                        "occurred_at": occurred,
                        "day": occurred.date().isoformat(),
                        "received_at": now,
                    }
                )
            if rows:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                conn.execute(
                    dialect.insert(usage_events).on_conflict_do_nothing(
                        index_elements=["event_id"]
                    ),
                    rows,
                )
        return len(rows), len(events) - len(rows)

    def report(
        self, by: str, since: datetime | None, source: str = "all", instance_id: str | None = None
    ) -> list[dict[str, Any]]:
        """`source`: `all`, `ide` (what IDEs reported, `POST /api/v4/usage_data/track_event`)
        or `gateway` (what the gateway shipped). `instance_id`: only that instance's events
        (the gateway ships those of every instance it serves); None: every instance's."""
        t = usage_events.c
        key = {
            "user": t.global_user_id,
            "day": t.day,
            "language": t.language,
            "client": t.client_name,
        }[by]
        columns = [_sum(column).label(name) for name, column in REPORT.items()]
        query = select(key.label("key"), *columns).group_by(key)
        if since is not None:
            query = query.where(t.occurred_at >= _naive_utc(since))
        if instance_id is not None:
            query = query.where(t.instance_id == instance_id)
        if source == "ide":
            query = query.where(t.source == "ide")
        elif source == "gateway":
            query = query.where(t.source.is_(None))
        with self.engine.connect() as conn:
            result = conn.execute(query.order_by(key)).mappings().all()
        return merge(
            {"key": row["key"] or "-", **{n: int(row[n]) for n in REPORT_COLUMNS}} for row in result
        )
