"""The instance as a usage sink: `POST /api/v4/usage/events` takes batches the gateway ships
(authenticated by a JWT the gateway signs: `iss` = gateway service name, `aud` = this
instance's URL, `purpose: usage_events`, verified with the gateway's published JWKS) and stores
them idempotently by `event_id` in `usage_events`; `GET /api/v4/usage/report` sums them up per
user, day or language for administrators.

Wiring (in the instance app): `app.state.usage_sink = UsageSink.from_settings(settings,
store.engine, clock)`, `app.include_router(usage_sink.router)`, `await
app.state.usage_sink.start()` / `aclose()` in the lifespan. The `usage_events` table comes from
the migration `0002_usage_events`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from codesuggest.common.logs import get_logger
from codesuggest.common.usage_report import REPORT_COLUMNS, merge
from codesuggest.tokens import Clock, KeySource, PublicKey, RemoteKeySet, SystemClock, Verifier
from codesuggest.tokens.errors import TokenError

log = get_logger("codesuggest.instance.usage")

TOKEN_PURPOSE = "usage_events"
MAX_BATCH = 5000

metadata = MetaData()
usage_events = Table(
    "usage_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("occurred_at", DateTime, nullable=False),  # naive UTC
    Column("day", String(10), nullable=False, index=True),
    Column("realm", String(32)),
    Column("instance_id", String(64)),
    Column("global_user_id", String(255), index=True),
    Column("host_name", String(255)),
    Column("language", String(64)),
    Column("model_provider", String(255)),
    Column("model_name", String(255)),
    Column("path", String(16)),
    Column("status", String(128)),
    Column("latency_ms", Float),
    Column("suggestion_chars", Integer),
    Column("count", Integer, nullable=False, default=1),
    Column("client_name", String(255)),
    Column("client_version", String(64)),
    Column("request_id", String(128)),
    Column("received_at", DateTime, nullable=False),
    Column("source", String(16)),  # "ide" for IDE telemetry (instance.ide_telemetry)
    Column("tracking_id", String(64), index=True),
)


def _clipped(limit: int) -> Any:
    """An optional string cut to the column's size: an over-long user agent must not make the
    gateway's whole batch invalid (it would be parked, and the usage lost to reports)."""

    def clip(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else value

    return Annotated[str | None, BeforeValidator(clip)]


class IncomingEvent(BaseModel):
    """One usage event on the wire (the gateway's event schema; unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=64)
    name: Literal[
        "code_suggestion_requested",
        "user_token_issued",
        "code_suggestion_shown",
        "code_suggestion_accepted",
        "code_suggestion_rejected",
    ]
    timestamp: datetime
    realm: _clipped(32) = None
    instance_id: _clipped(64) = None
    global_user_id: _clipped(255) = None
    host_name: _clipped(255) = None
    language: _clipped(64) = None
    model_provider: _clipped(255) = None
    model_name: _clipped(255) = None
    path: Literal["direct", "monolith"] | None = None
    status: _clipped(128) = None
    latency_ms: float | None = None
    suggestion_chars: int | None = None
    count: int = Field(default=1, ge=0)
    client_name: _clipped(255) = None
    client_version: _clipped(64) = None
    request_id: _clipped(128) = None


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


AdminCheck = Callable[[Request], None]
"""Raises (or returns a response-worthy error) unless the request comes from an admin; runs in
a worker thread."""


class UsageSink:
    def __init__(
        self,
        engine: Engine,
        *,
        audience: str,
        gateway_keys: KeySource,
        gateway_issuer: str,
        authorize_admin: AdminCheck | None = None,
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
        self.authorize_admin = authorize_admin or instance_admin
        self._http = http

    @classmethod
    def from_settings(cls, settings: Any, engine: Engine, clock: Clock | None = None) -> UsageSink:
        """From `InstanceSettings`: audience = `url`, gateway keys from `gateway_url`, issuer =
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
            known = set(
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

    def report(self, by: str, since: datetime | None, source: str = "all") -> list[dict[str, Any]]:
        """`source`: `all`, `ide` (what IDEs reported, `POST /api/v4/usage_data/track_event`)
        or `gateway` (what the gateway shipped)."""
        t = usage_events.c
        key = {
            "user": t.global_user_id,
            "day": t.day,
            "language": t.language,
            "client": t.client_name,
        }[by]
        requested = t.name == "code_suggestion_requested"

        def count_if(condition: Any, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

        columns = {
            "requested": count_if(requested),
            "served": count_if(and_(requested, t.status == "served")),
            "empty": count_if(and_(requested, t.status == "empty")),
            "errors": count_if(and_(requested, t.status.like("error%"))),
            "direct": count_if(and_(requested, t.path == "direct")),
            "monolith": count_if(and_(requested, t.path == "monolith")),
            "shown": count_if(t.name == "code_suggestion_shown", t.count),
            "accepted": count_if(t.name == "code_suggestion_accepted", t.count),
            "rejected": count_if(t.name == "code_suggestion_rejected", t.count),
            "tokens_issued": count_if(t.name == "user_token_issued"),
        }
        query = select(key.label("key"), *(c.label(n) for n, c in columns.items())).group_by(key)
        if since is not None:
            query = query.where(t.occurred_at >= _naive_utc(since))
        if source == "ide":
            query = query.where(t.source == "ide")
        elif source == "gateway":
            query = query.where(t.source.is_(None))
        with self.engine.connect() as conn:
            result = conn.execute(query.order_by(key)).mappings().all()
        return merge(
            {"key": row["key"] or "-", **{n: int(row[n]) for n in REPORT_COLUMNS}} for row in result
        )


def instance_admin(request: Request) -> None:
    """The instance's own check: a PAT of an administrator (raises the instance's 401/403)."""
    from codesuggest.instance import errors
    from codesuggest.instance.identity import authenticate, pat_from_headers
    from codesuggest.instance.models import utc

    context = request.app.state.ctx
    with context.store.session() as session:
        token = pat_from_headers(
            request.headers.get("private-token"), request.headers.get("authorization")
        )
        auth = authenticate(session, token, utc(context.clock.now()))
        if not auth.admin:
            raise errors.forbidden("You must be an administrator")


router = APIRouter()
UNAUTHORIZED = {"message": "401 Unauthorized"}
NOT_FOUND = {"message": "404 Not Found"}


def _sink(request: Request) -> UsageSink | None:
    """The running sink, or None when this instance does not take usage events."""
    sink: UsageSink | None = request.app.state.ctx.usage_sink
    return sink


@router.post("/api/v4/usage/events")
async def receive_events(request: Request) -> JSONResponse:
    sink = _sink(request)
    if sink is None:
        return JSONResponse(NOT_FOUND, status_code=404)
    try:
        await sink.authenticate(request.headers.get("authorization"))
    except TokenError as exc:
        log.info("usage batch refused", reason=exc.reason)
        return JSONResponse(UNAUTHORIZED, status_code=401)
    try:
        batch = EventBatch.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return JSONResponse({"error": f"{where} is invalid: {first['msg']}"}, status_code=400)
    stored, duplicates = await to_thread.run_sync(sink.store, batch.events)
    return JSONResponse({"stored": stored, "duplicates": duplicates})


@router.get("/api/v4/usage/report")
async def usage_report(
    request: Request,
    by: Literal["user", "day", "language", "client"] = Query("user"),
    since: datetime | None = Query(None),
    source: Literal["all", "ide", "gateway"] = Query("all"),
) -> JSONResponse:
    sink = _sink(request)
    if sink is None:
        return JSONResponse(NOT_FOUND, status_code=404)
    await to_thread.run_sync(sink.authorize_admin, request)
    rows = await to_thread.run_sync(sink.report, by, since, source)
    body = {"by": by, "since": since.isoformat() if since else None, "source": source}
    return JSONResponse(body | {"rows": rows})
