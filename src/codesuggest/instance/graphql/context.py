"""What every resolver reads from `info.context`."""

from __future__ import annotations

from dataclasses import dataclass

from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.context import InstanceContext


@dataclass(frozen=True)
class Viewer:
    """The authenticated user of the request (a PAT), as loaded once before execution."""

    user_id: int
    username: str
    admin: bool
    scopes: frozenset[str]
    has_seat: bool
    """A code-suggestions seat (in a group the user still belongs to, on SaaS)."""


@dataclass(frozen=True)
class GraphQLContext:
    instance: InstanceContext
    info: InstanceInfo
    viewer: Viewer | None
    """None for an anonymous request (GitLab answers `currentUser: null`)."""
