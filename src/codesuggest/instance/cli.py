"""`codesuggest instance ...`: serve, and the admin commands (logic lives in admin.py, seats.py,
keys.py and sync.py; this module only parses arguments and prints)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import httpx
import typer
import uvicorn

from codesuggest.common import logs, ports
from codesuggest.common.data_dir import make_private
from codesuggest.common.serving import server_config
from codesuggest.instance import admin, keys, seats, sign_in
from codesuggest.instance.models import utc
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import Store, application_settings, open_store
from codesuggest.instance.sync import sync_once
from codesuggest.tokens import SystemClock

app = typer.Typer(help="The code-hosting instance: users, PATs, seats, direct access.")
users_app = typer.Typer(help="Users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal access tokens.", no_args_is_help=True)
seats_app = typer.Typer(help="Code suggestions add-on seats.", no_args_is_help=True)
groups_app = typer.Typer(help="Top-level groups (SaaS add-on purchases belong to one).")
settings_app = typer.Typer(help="Application settings stored in the database.")
keys_app = typer.Typer(help="SaaS signing keys: create -> rotate -> trim.", no_args_is_help=True)
for sub, name in (
    (users_app, "users"),
    (tokens_app, "tokens"),
    (seats_app, "seats"),
    (groups_app, "groups"),
    (settings_app, "settings"),
    (keys_app, "keys"),
):
    app.add_typer(sub, name=name)

T = TypeVar("T")


def _now() -> datetime:
    return utc(SystemClock().now())


@contextmanager
def _store() -> Iterator[Store]:
    store = open_store(InstanceSettings())
    try:
        yield store
    finally:
        store.dispose()


def _run(action: Callable[[Any], T]) -> T:
    """Run `action(session)` in one transaction; admin errors exit 1 with their message."""
    with _store() as store:
        try:
            with store.session() as session:
                return action(session)
        except (admin.AdminError, seats.SeatError, keys.KeyAdminError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(ports.INSTANCE, help="Port to listen on."),
    log_level: str = typer.Option("info"),
) -> None:
    """Run the instance (settings from CODESUGGEST_INSTANCE_* env vars; without
    CODESUGGEST_INSTANCE_URL its URL is the address it listens on)."""
    from codesuggest.instance.app import create_app

    logs.configure(log_level)
    settings = InstanceSettings()
    if "url" not in settings.model_fields_set:
        settings = settings.model_copy(update={"url": ports.local_url(port, host)})
    make_private(settings.data_dir)
    uvicorn.Server(server_config(create_app(settings), host, port, log_level)).run()


@users_app.command("create")
def users_create(username: str, admin_: bool = typer.Option(False, "--admin")) -> None:
    user = _run(lambda s: admin.create_user(s, username, _now(), admin=admin_))
    typer.echo(f"created user {user.username} (id {user.id}{', admin' if user.admin else ''})")


@users_app.command("list")
def users_list() -> None:
    for user in _run(admin.list_users):
        flags = [f for f, on in (("admin", user.admin), ("blocked", user.blocked)) if on]
        typer.echo(f"{user.id}\t{user.username}\t{','.join(flags)}")


@users_app.command("block")
def users_block(username: str, unblock: bool = typer.Option(False, "--unblock")) -> None:
    _run(lambda s: admin.set_blocked(s, username, _now(), blocked=not unblock))
    typer.echo(f"{'unblocked' if unblock else 'blocked'} {username}")


@users_app.command("password")
def users_password(
    username: str,
    stdin: bool = typer.Option(False, "--stdin", help="Read the password from standard input."),
) -> None:
    """Set the password a user signs in to the admin pages (/admin) with; clears a lockout."""
    if stdin:
        password = typer.get_text_stream("stdin").readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    _run(lambda s: sign_in.set_password(s, username, password))
    typer.echo(f"password set for {username}")


@tokens_app.command("create")
def tokens_create(
    username: str,
    scopes: list[str] = typer.Option(["api"], "--scopes", help="api, read_api, ai_features"),
    days: int = typer.Option(30, "--days", help="Days until the token expires."),
    name: str = typer.Option("codesuggest", "--name"),
) -> None:
    """Create a PAT and print it: this is the only time it is shown."""
    split = [part for value in scopes for part in value.replace(",", " ").split()]
    new = _run(lambda s: admin.create_token(s, username, _now(), split, days, name))
    typer.echo(f"token id {new.id}, expires {new.expires_at:%Y-%m-%d}; store it now:", err=True)
    typer.echo(new.token)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    _run(lambda s: admin.revoke_token(s, token_id, _now()))
    typer.echo(f"revoked token {token_id}")


@tokens_app.command("list")
def tokens_list(username: str) -> None:
    for t in _run(lambda s: admin.list_tokens(s, username)):
        state = "revoked" if t.revoked else f"expires {t.expires_at:%Y-%m-%d}"
        typer.echo(f"{t.id}\t{t.name}\t{t.scopes}\t{state}\tlast used {t.last_used_at or '-'}")


@seats_app.command("purchase")
def seats_purchase(
    count: int = typer.Option(..., "--count", help="Seat count of the add-on purchase."),
    group: str | None = typer.Option(None, "--group", help="SaaS: the buying top-level group."),
) -> None:
    row = _run(lambda s: seats.purchase(s, count, _now(), group))
    typer.echo(f"code_suggestions add-on: {row.quantity} seats")


@seats_app.command("assign")
def seats_assign(username: str, group: str | None = typer.Option(None, "--group")) -> None:
    _run(lambda s: seats.assign(s, username, _now(), group))
    typer.echo(f"assigned a code_suggestions seat to {username}")


@seats_app.command("unassign")
def seats_unassign(username: str, group: str | None = typer.Option(None, "--group")) -> None:
    freed = _run(lambda s: seats.unassign(s, username, _now(), group))
    typer.echo(f"unassigned {username}" if freed else f"{username} had no seat")


@seats_app.command("list")
def seats_list() -> None:
    typer.echo(json.dumps(_run(seats.list_seats), indent=2))


@groups_app.command("create")
def groups_create(path: str) -> None:
    _run(lambda s: admin.create_group(s, path))
    typer.echo(f"created group {path}")


@groups_app.command("add-member")
def groups_add_member(path: str, username: str) -> None:
    _run(lambda s: admin.add_member(s, path, username))
    typer.echo(f"{username} is a member of {path}")


@settings_app.command("set")
def settings_set(key: str, value: str) -> None:
    """e.g. `settings set disabled_direct_code_suggestions true`."""
    _run(lambda s: admin.set_setting(s, key, value))
    typer.echo(f"{key} = {value}")


@settings_app.command("show")
def settings_show() -> None:
    def show(session: Any) -> dict[str, Any]:
        row = application_settings(session)
        return {k: getattr(row, k) for k in ("instance_uuid", *admin.SETTABLE)}

    typer.echo(json.dumps(_run(show), indent=2))


@app.command()
def sync(
    force: bool = typer.Option(False, "--force", help="Ask the portal even if not due."),
) -> None:
    """Run the token sync once (self-managed)."""
    settings = InstanceSettings()

    async def once() -> Any:
        with _store() as store:
            async with httpx.AsyncClient() as http:
                return await sync_once(store, settings, http, SystemClock(), force=force)

    logs.configure("WARNING")
    result = asyncio.run(once())
    expiry = f", expires {result.expires_at.isoformat()}" if result.expires_at else ""
    typer.echo(f"{result.outcome}: {result.reason}{expiry}")
    if not result.ok:
        raise typer.Exit(1)


@keys_app.command("list")
def keys_list() -> None:
    for key in _run(keys.list_keys):
        role = "signing" if key.current else "published"
        typer.echo(f"{key.kid}\t{role}\tcreated {key.created_at:%Y-%m-%d %H:%M}")


@keys_app.command("create")
def keys_create() -> None:
    row = _run(lambda s: keys.create_key(s, s.info["sealer"], _now()))
    typer.echo(f"created key {row.kid} ({'signing' if row.current else 'standby: rotate to it'})")


@keys_app.command("rotate")
def keys_rotate() -> None:
    row = _run(keys.rotate_keys)
    typer.echo(f"key {row.kid} now signs; the previous key stays published until `trim`")


@keys_app.command("trim")
def keys_trim() -> None:
    typer.echo(f"removed {_run(keys.trim_keys)} retired key(s)")
