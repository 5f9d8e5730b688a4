"""Fake instance + gateway on real loopback HTTP servers, started once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from client.contract_fakes import World, gateway_app, instance_app
from support.servers import ServerThread


@dataclass
class FakeStack:
    world: World
    instance: ServerThread
    gateway: ServerThread


@pytest.fixture(scope="module")
def fake_stack() -> Iterator[FakeStack]:
    world = World()
    gateway = ServerThread(gateway_app(world)).start()
    instance = ServerThread(instance_app(world)).start()
    world.gateway_url = gateway.url
    yield FakeStack(world, instance, gateway)
    instance.stop()
    gateway.stop()


@pytest.fixture
def stack(fake_stack: FakeStack) -> FakeStack:
    """The module's servers with every switch back to normal and a fresh server clock."""
    fake_stack.world.reset()
    return fake_stack
