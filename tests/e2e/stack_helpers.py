"""The one-machine stack as `codesuggest up` runs it, for the end-to-end tests: real processes on
a random free port base in a tmp data directory, plus admin actions on its databases."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from codesuggest.instance import admin, seats
from codesuggest.instance.store import open_store
from codesuggest.stack.demo import SAMPLE
from codesuggest.stack.layout import free_port_base
from codesuggest.stack.provision import SAAS_GROUP, instance_settings
from codesuggest.stack.runner import Stack

SAMPLE_ABOVE = SAMPLE["current_file"]["content_above_cursor"]


@contextmanager
def running_stack(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    port_base: int | None = None,
) -> Iterator[Stack]:
    """Start like `codesuggest up` (the client config goes to `data_dir/client`); `overrides`
    are extra environment per part, applied last."""
    config_dir = os.environ.get("CODESUGGEST_CONFIG_DIR")
    os.environ["CODESUGGEST_CONFIG_DIR"] = str(data_dir / "client")
    base_env = dict(os.environ)
    base_env.update(env or {})
    stack = Stack(data_dir / "stack", port_base or free_port_base(), base_env, overrides or {})
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        if config_dir is None:
            os.environ.pop("CODESUGGEST_CONFIG_DIR", None)
        else:
            os.environ["CODESUGGEST_CONFIG_DIR"] = config_dir


@contextmanager
def instance_session(stack: Stack, realm: str):  # type: ignore[no-untyped-def]
    settings = instance_settings(
        realm, stack.layout, stack.state.get("license_key"), stack.overrides.get(realm)
    )
    store = open_store(settings)
    try:
        with store.session() as session:
            yield session
    finally:
        store.dispose()


def add_user(stack: Stack, realm: str, username: str) -> str:
    """A user with a code-suggestions seat; returns a fresh PAT (tests don't share users, so
    the instance's per-user rate limit never couples them)."""
    now = datetime.now(UTC)
    group = SAAS_GROUP if realm == "saas" else None
    with instance_session(stack, realm) as session:
        admin.create_user(session, username, now)
        if group:
            admin.add_member(session, group, username)
    with instance_session(stack, realm) as session:
        seats.assign(session, username, now, group)
        return admin.create_token(session, username, now, ["api"], 1).token


def remove_seat(stack: Stack, realm: str, username: str) -> None:
    group = SAAS_GROUP if realm == "saas" else None
    with instance_session(stack, realm) as session:
        assert seats.unassign(session, username, datetime.now(UTC), group)


def set_setting(stack: Stack, realm: str, key: str, value: object) -> None:
    with instance_session(stack, realm) as session:
        admin.set_setting(session, key, value)
