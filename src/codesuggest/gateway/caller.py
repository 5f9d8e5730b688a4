"""Who is calling the gateway, as the authentication layer (`auth.py`) established it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from verified claims (and, for attribution only, agreeing headers)."""

    claims: dict[str, Any]
    is_user_token: bool
    realm: str | None
    instance_id: str | None
    global_user_id: str | None
    host_name: str | None
    scopes: frozenset[str]
    client_name: str | None
    client_version: str | None

    @property
    def path(self) -> Literal["direct", "monolith"]:
        """User tokens come straight from the IDE; instance tokens through the monolith."""
        return "direct" if self.is_user_token else "monolith"
