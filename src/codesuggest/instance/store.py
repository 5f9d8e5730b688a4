"""Opening the instance database: engine, migrations, the settings row, the at-rest sealer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from codesuggest.common.db import make_engine, upgrade
from codesuggest.common.sealing import Sealer
from codesuggest.instance.models import ApplicationSettings
from codesuggest.instance.settings import SEEDED_FIELDS, InstanceSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    sealer: Sealer
    secret: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(settings: InstanceSettings) -> Store:
    """Connect, migrate to head, and seed or update the application settings row."""
    secret = settings.resolved_secret()
    sealer = Sealer(secret, purpose="codesuggest-instance-at-rest")
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine, MIGRATIONS_DIR)
    # The sealer rides on every session so `sync.newest_live_token(session, now)` can open tokens.
    sessions = sessionmaker(engine, expire_on_commit=False, info={"sealer": sealer})
    store = Store(engine=engine, sessions=sessions, sealer=sealer, secret=secret)
    with store.session() as session:
        seed_application_settings(session, settings)
    return store


def _seed_values(settings: InstanceSettings) -> dict[str, object]:
    return {
        "realm": settings.realm,
        "host_name": settings.resolved_host_name(),
        "version": settings.version,
        "gateway_url": settings.gateway_url.rstrip("/"),
        "edge_url": settings.edge_url.rstrip("/") if settings.edge_url else None,
        "disabled_direct_code_suggestions": settings.disabled_direct_code_suggestions,
        "model_provider": settings.model_provider,
        "model_name": settings.model_name,
        "code_suggestions_contexts": settings.code_suggestions_contexts,
    }


def seed_application_settings(session: Session, settings: InstanceSettings) -> None:
    """First start: create the row (new instance UUID) from the settings. Later starts: only
    values set explicitly (env vars or constructor arguments) overwrite the stored ones, so an
    admin's `PUT /api/v4/application/settings` survives restarts."""
    values = _seed_values(settings)
    row = session.scalar(select(ApplicationSettings).where(ApplicationSettings.id == 1))
    if row is None:
        session.add(ApplicationSettings(id=1, instance_uuid=str(uuid.uuid4()), **values))
        return
    explicit = set(settings.model_fields_set)
    if "url" in explicit:  # the host name follows the URL unless it is set itself
        explicit.add("host_name")
    for name in SEEDED_FIELDS:
        if name in explicit:
            setattr(row, name, values[name])


def application_settings(session: Session) -> ApplicationSettings:
    row = session.get(ApplicationSettings, 1)
    if row is None:
        raise RuntimeError("the instance database has no settings row: open it with open_store")
    return row
