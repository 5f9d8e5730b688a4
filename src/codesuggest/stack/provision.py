"""First start: keys, databases, a demo license, users with seats and PATs; and the token sync.

Idempotent: what `stack.json` records is reused, so a second `up` changes nothing; a first
start interrupted half-way resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from codesuggest.client import config as client_config
from codesuggest.instance import admin as instance_admin
from codesuggest.instance import seats, sign_in
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, open_store
from codesuggest.instance.sync import SyncResult, sync_once
from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.settings import PortalSettings
from codesuggest.stack.layout import Layout, StackError, write_private_json
from codesuggest.stack.parts import part_settings
from codesuggest.tokens import SystemClock

ADMIN_USER = "admin"
DEMO_USER = "demo"
SAAS_GROUP = "demo"
DEMO_SEATS = 10
PAT_DAYS = 365
REALMS = ("self-managed", "saas")


def portal_settings(layout: Layout) -> PortalSettings:
    values = part_settings("portal", layout, None)
    return PortalSettings(
        url=values["url"],
        data_dir=values["data_dir"],
        database_url=f"sqlite:///{layout.part_dir('portal') / 'portal.db'}",
    )


def instance_settings(
    realm: str,
    layout: Layout,
    license_key: str | None,
    overrides: Mapping[str, str] | None = None,
) -> InstanceSettings:
    """The settings the instance process runs with (opening its store re-seeds the stored
    application settings from them, so they must match the process's environment)."""
    values: dict[str, Any] = dict(part_settings(realm, layout, license_key))
    prefix = "CODESUGGEST_INSTANCE_"
    for name, value in (overrides or {}).items():
        if name.startswith(prefix):
            values[name.removeprefix(prefix).lower()] = value
    # `database_url` is read through its alias only.
    values["CODESUGGEST_INSTANCE_DATABASE_URL"] = values.pop("database_url")
    return InstanceSettings(**values)


def _now() -> datetime:
    return datetime.fromtimestamp(SystemClock().now(), UTC)


def provision_portal(layout: Layout, state: dict[str, Any]) -> None:
    """Signing key, and once: a cloud license with the `code_suggestions` add-on."""
    layout.part_dir("portal").mkdir(parents=True, exist_ok=True)
    try:
        admin = PortalAdmin.open(portal_settings(layout))
    except Exception as exc:
        raise StackError(f"the portal's database could not be opened: {exc}") from exc
    try:
        admin.ensure_signing_key()
        if not state.get("license_key"):
            license = admin.create_license(customer="codesuggest demo")
            admin.add_addon(license.id, name="code_suggestions", seats=DEMO_SEATS)
            state["license_key"] = license.key
            state["license_id"] = license.id
            write_private_json(layout.state_file, state)
    finally:
        admin.close()


def _ensure_user(store: Store, username: str, is_admin: bool) -> None:
    with store.session() as session:
        users = {user.username for user in instance_admin.list_users(session)}
        if username not in users:
            instance_admin.create_user(session, username, _now(), admin=is_admin)


def _ensure_seats(store: Store, realm: str) -> None:
    group = SAAS_GROUP if realm == "saas" else None
    with store.session() as session:
        if group is not None:
            try:
                instance_admin.create_group(session, group)
            except instance_admin.AdminError:
                pass  # exists already: a resumed first start
            for username in (ADMIN_USER, DEMO_USER):
                instance_admin.add_member(session, group, username)
        if not any(entry["group"] == group for entry in seats.list_seats(session)):
            seats.purchase(session, DEMO_SEATS, _now(), group)
    with store.session() as session:
        for username in (ADMIN_USER, DEMO_USER):
            seats.assign(session, username, _now(), group)


def provision_instance(realm: str, layout: Layout, state: dict[str, Any]) -> None:
    """An admin and a demo user, each with a seat and a PAT (kept in the 0600 state file)."""
    layout.part_dir(realm).mkdir(parents=True, exist_ok=True)
    instances = state.setdefault("instances", {})
    done = instances.get(realm, {})
    if done.get("admin_pat") and done.get("user_pat"):
        return
    try:
        store = open_store(instance_settings(realm, layout, state.get("license_key")))
    except Exception as exc:
        raise StackError(f"the {realm} instance's database could not be opened: {exc}") from exc
    try:
        _ensure_user(store, ADMIN_USER, is_admin=True)
        _ensure_user(store, DEMO_USER, is_admin=False)
        _ensure_seats(store, realm)
        with store.session() as session:
            admin_pat = instance_admin.create_token(
                session, ADMIN_USER, _now(), ["api"], PAT_DAYS, "codesuggest up"
            ).token
            user_pat = instance_admin.create_token(
                session, DEMO_USER, _now(), ["api"], PAT_DAYS, "codesuggest up"
            ).token
    except (instance_admin.AdminError, seats.SeatError) as exc:
        raise StackError(f"provisioning the {realm} instance failed: {exc}") from exc
    finally:
        store.dispose()
    instances[realm] = {
        "admin_user": ADMIN_USER,
        "user": DEMO_USER,
        "admin_pat": admin_pat,
        "user_pat": user_pat,
    }
    write_private_json(layout.state_file, state)


def provision_admin_password(realm: str, layout: Layout, state: dict[str, Any]) -> None:
    """Once: the admin's first password for the admin pages (kept in the 0600 state file, as
    the PATs are; changing it on the admin's page or with the CLI does not update it)."""
    done = state["instances"][realm]
    if done.get("admin_password"):
        return
    password = sign_in.new_password()
    store = open_store(instance_settings(realm, layout, state.get("license_key")))
    try:
        with store.session() as session:
            sign_in.set_password(session, ADMIN_USER, password)
    except instance_admin.AdminError as exc:
        raise StackError(f"setting the {realm} admin's password failed: {exc}") from exc
    finally:
        store.dispose()
    done["admin_password"] = password
    write_private_json(layout.state_file, state)


def provision(layout: Layout, state: dict[str, Any]) -> dict[str, Any]:
    state["port_base"] = layout.port_base
    state.setdefault("created_at", _now().isoformat(timespec="seconds"))
    write_private_json(layout.state_file, state)
    provision_portal(layout, state)
    for realm in REALMS:
        provision_instance(realm, layout, state)
        provision_admin_password(realm, layout, state)
    return state


def save_client_config(layout: Layout, state: dict[str, Any]) -> bool:
    """Point `codesuggest complete` and the language server at the self-managed instance with
    the demo user's PAT, unless the user logged in somewhere else (a config this stack wrote
    before, e.g. under another port base, is ours to update). True when written."""
    url = layout.url("self-managed")
    stored = client_config.load()
    ours = {url, state.get("client_config_url")}
    if stored is not None and stored.instance_url.rstrip("/") not in ours:
        return False
    client_config.save(url, state["instances"]["self-managed"]["user_pat"])
    state["client_config_url"] = url
    write_private_json(layout.state_file, state)
    return True


def sync_tokens(
    layout: Layout, state: dict[str, Any], overrides: Mapping[str, str] | None = None
) -> SyncResult:
    """Run the self-managed instance's token sync now (forced: the portal URL may have moved)."""
    settings = instance_settings("self-managed", layout, state.get("license_key"), overrides)
    store = open_store(settings)

    async def once() -> SyncResult:
        async with httpx.AsyncClient() as http:
            return await sync_once(store, settings, http, SystemClock(), force=True)

    try:
        return asyncio.run(once())
    finally:
        store.dispose()
