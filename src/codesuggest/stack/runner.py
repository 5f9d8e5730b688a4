"""`up`, `down` and `status` as functions: the CLI, `demo` and the end-to-end tests share them."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from codesuggest.stack.layout import (
    DEFAULT_PORT_BASE,
    PARTS,
    Layout,
    StackError,
    free_port_base,
    prepare_data_dir,
    read_json,
    write_private_json,
)
from codesuggest.stack.parts import environment, gateway_completions
from codesuggest.stack.provision import provision, save_client_config, sync_tokens
from codesuggest.stack.supervisor import Supervisor, is_our_process, terminate_pid

Progress = Callable[[str, str], None]


def _quiet(part: str, event: str) -> None:
    return None


def load_state(data_dir: Path) -> dict[str, Any]:
    return read_json(Layout(data_dir).state_file) or {}


def running_pids(data_dir: Path) -> dict[str, int]:
    """The parts recorded in the pid file that are still alive (and are ours)."""
    record = read_json(Layout(data_dir).pid_file) or {}
    parts = record.get("parts", {})
    return {
        name: pid for name, pid in parts.items() if isinstance(pid, int) and is_our_process(pid)
    }


@dataclass
class Stack:
    """The four parts on loopback under one data directory."""

    data_dir: Path
    port_base: int | None = None
    base_env: Mapping[str, str] | None = None
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Extra environment per part, applied last (benchmarks put relays between parts)."""
    state: dict[str, Any] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    config_written: bool = False

    @property
    def layout(self) -> Layout:
        return Layout(self.data_dir, self.port_base or DEFAULT_PORT_BASE)

    def up(self, on_progress: Progress = _quiet, timeout: float = 60.0) -> dict[str, Any]:
        """Provision (first start only), start every part, wait for readiness, sync tokens.
        On failure nothing is left running and StackError says which part and why."""
        self.data_dir = prepare_data_dir(self.data_dir)
        self.state = load_state(self.data_dir)
        if self.port_base is None:
            self.port_base = int(self.state.get("port_base", DEFAULT_PORT_BASE))
        alive = running_pids(self.data_dir)
        if alive:
            raise StackError(
                f"the stack in {self.data_dir} is already running ({', '.join(alive)}); "
                "see `codesuggest status`, or `codesuggest down` first"
            )
        layout = self.layout
        on_progress("data", "provisioning" if not self.state.get("instances") else "reusing")
        self.state = provision(layout, self.state)
        self.supervisor = Supervisor(
            layout, self.state.get("license_key"), self.base_env, self.overrides
        )
        self.supervisor.start_all(on_progress, timeout)
        try:
            on_progress("sync", "token sync with the portal")
            result = sync_tokens(layout, self.state, self.overrides.get("self-managed"))
            if not result.ok:
                raise StackError(f"the self-managed instance's token sync failed: {result.reason}")
            self.config_written = save_client_config(layout, self.state)
            self.write_pid_file(os.getpid())
        except BaseException:
            self.supervisor.stop_all()
            raise
        body = self.summary()
        gateway_env = environment(
            "gateway", layout, None, self.base_env, self.overrides.get("gateway")
        )
        body["gateway"]["completions"] = gateway_completions(gateway_env).describe()
        return body

    def write_pid_file(self, supervisor_pid: int | None) -> None:
        assert self.supervisor is not None
        write_private_json(
            self.layout.pid_file,
            {
                "supervisor": supervisor_pid,
                "port_base": self.layout.port_base,
                "parts": self.supervisor.pids(),
            },
        )

    def detach(self) -> None:
        """Leave the parts running for `status` and `down`."""
        self.write_pid_file(None)
        self.supervisor = None

    def down(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
            self.supervisor = None
        self.layout.pid_file.unlink(missing_ok=True)

    def restart(self, part: str) -> None:
        """Stop one part and start it again on the same port (tests: a restart mid-session)."""
        assert self.supervisor is not None
        self.supervisor.restart(part)
        self.write_pid_file(os.getpid())

    def summary(self) -> dict[str, Any]:
        return summary(self.data_dir, self.layout, self.state)


def benchmark_stack(tmp: Path) -> Stack:
    """A stack under `tmp` on free ports for benchmarks: the client config goes to `tmp` too,
    and since one demo user sends every request, the instance's and the gateway's per-user
    rate limits are lifted."""
    os.environ["CODESUGGEST_CONFIG_DIR"] = str(tmp / "client")
    env = dict(
        os.environ,
        CODESUGGEST_INSTANCE_COMPLETIONS_PER_MINUTE="1000000",
        CODESUGGEST_INSTANCE_DIRECT_ACCESS_PER_MINUTE="1000000",
        CODESUGGEST_GATEWAY_FAIRNESS__USER_RATE="1000000",
        CODESUGGEST_GATEWAY_FAIRNESS__USER_BURST="1000000",
    )
    return Stack(tmp / "stack", free_port_base(), env)


def summary(data_dir: Path, layout: Layout, state: Mapping[str, Any]) -> dict[str, Any]:
    """The one JSON object `up --json` and `status --json` print."""
    instances = state.get("instances", {})
    return {
        "data_dir": str(data_dir),
        "portal": {"url": layout.url("portal")},
        "gateway": {"url": layout.url("gateway")},
        "edge": {"url": layout.edge_url},
        "instances": {
            realm: {
                "url": layout.url(realm),
                "admin_url": layout.url(realm) + "/admin",
                "admin_user": instances.get(realm, {}).get("admin_user"),
                "admin_password": instances.get(realm, {}).get("admin_password"),
                "admin_pat": instances.get(realm, {}).get("admin_pat"),
                "user_pat": instances.get(realm, {}).get("user_pat"),
            }
            for realm in ("self-managed", "saas")
        },
    }


def status(data_dir: Path) -> dict[str, Any]:
    """The summary plus, per part, its pid and whether it answers its readiness check."""
    data_dir = data_dir.expanduser().resolve()
    state = load_state(data_dir)
    if not state:
        raise StackError(f"no stack in {data_dir}: start one with `codesuggest up`")
    record = read_json(Layout(data_dir).pid_file) or {}
    layout = Layout(
        data_dir, int(record.get("port_base", state.get("port_base", DEFAULT_PORT_BASE)))
    )
    alive = running_pids(data_dir)
    parts: dict[str, Any] = {}
    with httpx.Client(timeout=2.0) as client:
        for name in PARTS:
            ready = False
            if name in alive:
                with contextlib.suppress(httpx.HTTPError):
                    ready = _ready(client, layout.url(name))
            parts[name] = {"url": layout.url(name), "pid": alive.get(name), "ready": ready}
    body = summary(data_dir, layout, state)
    body["running"] = bool(alive) and all(p["ready"] for p in parts.values())
    body["parts"] = parts
    return body


def _ready(client: httpx.Client, url: str) -> bool:
    response = client.get(url + "/monitoring/ready")
    if response.status_code == 404:
        response = client.get(url + "/monitoring/healthz")
    return response.status_code == 200


def down(data_dir: Path) -> list[str]:
    """Stop the parts a detached `up` left running (reverse start order); names stopped."""
    data_dir = data_dir.expanduser().resolve()
    layout = Layout(data_dir)
    record = read_json(layout.pid_file)
    if record is None:
        return []
    supervisor_pid = record.get("supervisor")
    if isinstance(supervisor_pid, int) and supervisor_pid != os.getpid():
        # A foreground `up`: ask it to stop its parts in order, as Ctrl-C would.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(supervisor_pid, signal.SIGTERM)
    alive = running_pids(data_dir)
    for name in reversed(PARTS):
        if name in alive:
            terminate_pid(alive[name])
    layout.pid_file.unlink(missing_ok=True)
    return [name for name in PARTS if name in alive]
