"""Secrets at rest: license keys only as SHA-256, private keys only sealed; first-start key."""

from __future__ import annotations

import hashlib
import stat

from sqlalchemy import create_engine, inspect, text

from codesuggest.common.db import normalize_url
from codesuggest.common.sealing import Sealer
from codesuggest.tokens import PrivateKey
from portal.helpers import Portal, start_portal


def dump_database(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, read with a separate engine (no portal code involved)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return {
                table: [tuple(row) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
                for table in inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def test_license_key_is_stored_only_as_its_hash(portal: Portal) -> None:
    created = portal.admin.create_license(customer="hash-check")
    portal.admin.add_addon(created.id)
    portal.access(created.key)
    dump = dump_database(portal.settings.effective_database_url)
    everything = repr(dump)
    assert created.key not in everything
    assert created.key[5:25] not in everything  # not even a fragment of it
    digest = hashlib.sha256(created.key.encode()).hexdigest()
    assert digest in {row[2] for row in dump["licences"]}  # id, customer_id, key_hash, ...


def test_private_keys_are_stored_only_sealed(portal: Portal) -> None:
    portal.admin.create_key()
    dump = dump_database(portal.settings.effective_database_url)
    everything = repr(dump)
    assert "PRIVATE KEY" not in everything
    assert "BEGIN" not in everything
    secret_file = portal.settings.data_dir / "portal.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    sealer = Sealer(secret_file.read_text().strip())
    rows = dump["signing_keys"]
    assert len(rows) == 2
    for kid, sealed_pem, *_ in rows:
        assert PrivateKey.from_pem(sealer.open(sealed_pem)).kid == kid


def test_restart_keeps_the_signing_key(portal: Portal, tmp_path) -> None:
    """A second start on the same database signs with the same key, creating none."""
    before = {(k.kid, k.state) for k in portal.admin.list_keys()}
    again, server = start_portal(portal.settings.effective_database_url, portal.settings.data_dir)
    try:
        assert {(k.kid, k.state) for k in again.admin.list_keys()} == before
        token = again.access(again.license_with_addon()).json()["data"]["cloudConnectorAccess"]
        assert token["serviceToken"]["token"]
    finally:
        again.http.close()
        server.stop()
