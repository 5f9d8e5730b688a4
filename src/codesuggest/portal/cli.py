"""`codesuggest portal ...`: serve the portal and administer licenses, add-ons and keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from codesuggest.common import logs
from codesuggest.common.data_dir import make_private
from codesuggest.common.serving import server_config
from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.keyring import KeyringError
from codesuggest.portal.licensing import LicensingError
from codesuggest.portal.settings import DEFAULT_PORT, PortalSettings
from codesuggest.tokens import PrivateKey

app = typer.Typer(help="Licensing portal: licenses, add-ons, signing keys.", no_args_is_help=True)
licenses_app = typer.Typer(help="Create, list and revoke licenses.", no_args_is_help=True)
addons_app = typer.Typer(help="Add-on purchases on a license.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: create, rotate, trim.", no_args_is_help=True)
app.add_typer(licenses_app, name="licenses")
app.add_typer(addons_app, name="addons")
app.add_typer(keys_app, name="keys")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Portal data directory (default: CODESUGGEST_PORTAL_DATA_DIR)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings(data_dir: Path | None) -> PortalSettings:
    return PortalSettings(data_dir=data_dir) if data_dir else PortalSettings()


@contextmanager
def _admin(data_dir: Path | None) -> Iterator[PortalAdmin]:
    admin = PortalAdmin.open(_settings(data_dir))
    try:
        yield admin
    except (LicensingError, KeyringError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        admin.close()


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    data_dir: DataDir = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the portal (settings from CODESUGGEST_PORTAL_* environment variables)."""
    from codesuggest.portal.app import create_app

    settings = _settings(data_dir)
    if "url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"url": f"http://{host}:{port}"})
    logs.configure(log_level)
    make_private(settings.data_dir)
    uvicorn.Server(server_config(create_app(settings), host, port)).run()


@licenses_app.command("create")
def licenses_create(
    customer: Annotated[str, typer.Option(help="Customer name.")] = "default",
    trial: Annotated[bool, typer.Option("--trial", help="A trial license.")] = False,
    no_cloud: Annotated[bool, typer.Option("--no-cloud", help="Not a cloud license.")] = False,
    days: Annotated[int, typer.Option(help="Days until the license expires.")] = 365,
    grace_days: Annotated[int, typer.Option(help="Grace period after expiry.")] = 14,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """Create a license and print its key. The key is shown this once only."""
    with _admin(data_dir) as admin:
        created = admin.create_license(
            customer=customer, cloud=not no_cloud, trial=trial, days=days, grace_days=grace_days
        )
    if as_json:
        _print_json(
            {
                "id": created.id,
                "license_key": created.key,
                "customer": created.customer,
                "cloud": created.cloud,
                "trial": created.trial,
                "starts_at": created.starts_at.isoformat(),
                "expires_at": created.expires_at.isoformat(),
                "grace_period_days": created.grace_period_days,
            }
        )
        return
    out.print(f"License {created.id} for {created.customer!r}, expires {_iso(created.expires_at)}")
    out.print("License key (shown once, store it now):")
    out.print(created.key, soft_wrap=True, highlight=False)


@licenses_app.command("list")
def licenses_list(as_json: AsJson = False, data_dir: DataDir = None) -> None:
    """List licenses with their add-ons and the instances that used them."""
    with _admin(data_dir) as admin:
        licenses = admin.list_licenses()
    rows: list[dict[str, Any]] = [
        {
            "id": lic.id,
            "customer": lic.customer.name,
            "cloud": lic.cloud,
            "trial": lic.trial,
            "starts_at": _iso(lic.starts_at),
            "expires_at": _iso(lic.expires_at),
            "grace_period_days": lic.grace_period_days,
            "revoked_at": _iso(lic.revoked_at) if lic.revoked_at else None,
            "addons": [
                {
                    "name": a.name,
                    "seats": a.seats,
                    "starts_at": _iso(a.starts_at),
                    "ends_at": _iso(a.ends_at),
                }
                for a in lic.addons
            ],
            "instances": [
                {
                    "instance_id": i.instance_id,
                    "host_name": i.host_name,
                    "version": i.version,
                    "last_seen_at": _iso(i.last_seen_at),
                }
                for i in lic.instances
            ],
        }
        for lic in licenses
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "customer", "type", "expires", "revoked", "add-ons", "instances")
    for row in rows:
        kind = ("cloud" if row["cloud"] else "offline") + (" trial" if row["trial"] else "")
        addons = ", ".join(f"{a['name']} x{a['seats']} until {a['ends_at']}" for a in row["addons"])
        table.add_row(
            str(row["id"]),
            row["customer"],
            kind,
            row["expires_at"],
            row["revoked_at"] or "-",
            addons or "-",
            str(len(row["instances"])),
        )
    out.print(table)


@licenses_app.command("revoke")
def licenses_revoke(license_id: int, data_dir: DataDir = None) -> None:
    """Revoke a license: its next sync is refused (tokens already issued run out on their own)."""
    with _admin(data_dir) as admin:
        license = admin.revoke_license(license_id)
    out.print(f"License {license.id} revoked at {_iso(license.revoked_at)}")


@licenses_app.command("rebind")
def licenses_rebind(
    license_id: int,
    instance_id: Annotated[
        str | None,
        typer.Option(help="Bind to this instance id; default: to the instance of the next sync."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Move a license to another instance: a license serves only the instance of its first sync."""
    with _admin(data_dir) as admin:
        admin.rebind_license(license_id, instance_id)
    target = instance_id or "the instance of its next sync"
    out.print(f"License {license_id} is now bound to {target}")


@addons_app.command("add")
def addons_add(
    license_id: int,
    name: Annotated[str, typer.Option(help="Add-on name.")] = "code_suggestions",
    seats: Annotated[int, typer.Option(help="Seats purchased.")] = 10,
    days: Annotated[int, typer.Option(help="Days the purchase lasts.")] = 365,
    data_dir: DataDir = None,
) -> None:
    """Record an add-on purchase on a license (starts now)."""
    with _admin(data_dir) as admin:
        purchase = admin.add_addon(license_id, name=name, seats=seats, days=days)
    out.print(
        f"Add-on {purchase.name} x{purchase.seats} on license {license_id} "
        f"until {_iso(purchase.ends_at)}"
    )


@addons_app.command("remove")
def addons_remove(
    license_id: int,
    name: Annotated[str, typer.Option(help="Add-on name.")] = "code_suggestions",
    data_dir: DataDir = None,
) -> None:
    """Remove a license's purchases of an add-on: the next sync returns no token."""
    with _admin(data_dir) as admin:
        count = admin.remove_addon(license_id, name)
    out.print(f"Removed {count} {name} purchase(s) from license {license_id}")


@keys_app.command("list")
def keys_list(as_json: AsJson = False, data_dir: DataDir = None) -> None:
    """List signing keys with their state and, for retired keys, when they may be trimmed."""
    with _admin(data_dir) as admin:
        keys = admin.list_keys()
    rows: list[dict[str, Any]] = [
        {
            "kid": k.kid,
            "state": k.state,
            "created_at": _iso(k.created_at),
            "retired_at": _iso(k.retired_at) if k.retired_at else None,
            "in_jwks": k.published,
            "removable_after": _iso(k.removable_after) if k.removable_after else None,
        }
        for k in keys
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("kid", "state", "created", "retired", "in JWKS", "trimmable after")
    for row in rows:
        table.add_row(
            row["kid"],
            row["state"],
            row["created_at"],
            row["retired_at"] or "-",
            "yes" if row["in_jwks"] else "no",
            row["removable_after"] or "-",
        )
    out.print(table)


@keys_app.command("create")
def keys_create(
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Import this RSA private key (PEM).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Publish a new key in the JWKS; the current key keeps signing until `rotate`."""
    key = PrivateKey.from_file(from_file) if from_file else None
    with _admin(data_dir) as admin:
        kid = admin.create_key(key)
    out.print(f"Published key {kid}. Rotate once verifiers have refreshed their JWKS (<= 24 h).")


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDir = None) -> None:
    """Sign with the newest published key; the old signing key is retired (still published)."""
    with _admin(data_dir) as admin:
        new, old = admin.rotate_keys()
    out.print(f"Now signing with {new}." + (f" Retired {old}." if old else ""))


@keys_app.command("trim")
def keys_trim(
    force: Annotated[
        bool, typer.Option("--force", help="Remove retired keys even if tokens may be live.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Remove retired keys once no token signed by them can still be accepted."""
    with _admin(data_dir) as admin:
        result = admin.trim_keys(force=force)
    for kid in result.removed:
        out.print(f"Removed {kid}")
    for key in result.still_live:
        out.print(f"Kept {key.kid}: tokens may be live until {_iso(key.removable_after)}")
    if not result.removed and not result.still_live:
        out.print("No retired keys to remove.")
