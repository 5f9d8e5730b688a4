"""Seats bounded by the license: the real portal's add-on seat count reaches the instance through
the sync, and purchases or assignments beyond it are refused (service functions and the CLI).
Portal and instance on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from codesuggest.instance import admin, seats
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from codesuggest.instance.sync import SyncResult, sync_once
from portal.helpers import Portal, start_portal
from support.databases import postgres_database

pytestmark = pytest.mark.postgres
INSTANCE_ID = "5d1c0f3e-7b7a-4f55-9d0e-1f2a3b4c5d6e"
SECRET = "seats-e2e-instance-secret-0123456789abcdef"


@dataclass
class World:
    portal: Portal
    license_id: int
    settings: InstanceSettings
    store: Store
    database_url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("licensed-seats")
    with postgres_database("cs_seat_portal") as portal_db, postgres_database("cs_seats") as db:
        portal, server = start_portal(portal_db, root / "portal")
        license = portal.admin.create_license(customer="seats")
        portal.admin.add_addon(license.id, seats=3)
        settings = InstanceSettings(
            data_dir=root / "instance",
            CODESUGGEST_INSTANCE_DATABASE_URL=db,
            secret=SECRET,
            portal_url=portal.url,
            license_key=license.key,
            host_name="gitlab.seats.test",
            sync_enabled=False,
        )
        store = open_store(settings)
        with store.session() as session:
            application_settings(session).instance_uuid = INSTANCE_ID
        now = datetime.now(UTC)
        with store.session() as session:
            for name in ("u1", "u2", "u3", "u4"):
                admin.create_user(session, name, now)
        try:
            yield World(portal, license.id, settings, store, db)
        finally:
            store.dispose()
            portal.http.close()
            server.stop()


async def sync(world: World) -> SyncResult:
    async with httpx.AsyncClient() as http:
        return await sync_once(world.store, world.settings, http, world.portal.clock, force=True)


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CODESUGGEST_INSTANCE_DATABASE_URL": world.database_url,
        "CODESUGGEST_INSTANCE_SECRET": SECRET,
        "CODESUGGEST_INSTANCE_DATA_DIR": str(world.settings.data_dir),
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "codesuggest"), "instance", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_seats_beyond_the_license_are_refused(world: World) -> None:
    assert (await sync(world)).outcome == "stored"
    with world.store.session() as session:
        [entry] = seats.list_seats(session)
    # The add-on purchase arrives with the license, with its seat count.
    assert (entry["seats"], entry["licensed"]) == (3, 3)

    refused = cli(world, "seats", "purchase", "--count", "100000")
    assert refused.returncode == 1
    assert "the license allows 3 code_suggestions seats: cannot purchase 100000" in refused.stderr
    assert "Traceback" not in refused.stderr

    now = datetime.now(UTC)
    for name in ("u1", "u2", "u3"):
        with world.store.session() as session:
            seats.assign(session, name, now)
    with pytest.raises(seats.SeatError, match="the license allows 3"):
        with world.store.session() as session:
            seats.assign(session, "u4", now)

    # More seats bought on the portal reach the instance with the next sync.
    world.portal.admin.remove_addon(world.license_id)
    world.portal.admin.add_addon(world.license_id, seats=4)
    assert (await sync(world)).outcome == "stored"
    assert cli(world, "seats", "purchase", "--count", "4").returncode == 0
    with world.store.session() as session:
        seats.assign(session, "u4", now)
    with world.store.session() as session:
        [entry] = seats.list_seats(session)
    assert (entry["seats"], entry["licensed"], len(entry["assigned"])) == (4, 4, 4)
