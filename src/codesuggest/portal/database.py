"""The portal's database: engine, sessions and migrations at start-up."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from codesuggest.common.db import make_engine, session_factory, upgrade

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def open_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Connect and bring the schema up to date (idempotent)."""
    engine = make_engine(url)
    upgrade(engine, MIGRATIONS_DIR)
    return engine, session_factory(engine)
