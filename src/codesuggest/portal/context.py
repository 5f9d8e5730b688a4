"""Everything a running portal holds: settings, clock, the admin (database, keyring, sealer) and
the access service behind `/graphql`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from codesuggest.portal import keyring
from codesuggest.portal.access import AccessService
from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.graphql_schema import PortalSchema, build_schema
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import Clock, PublicKey


@dataclass
class PortalContext:
    settings: PortalSettings
    clock: Clock
    admin: PortalAdmin
    access: AccessService
    graphql_schema: PortalSchema
    _public_keys: dict[str, PublicKey] = field(default_factory=dict)  # parsed once per kid

    @classmethod
    def build(cls, settings: PortalSettings, clock: Clock) -> PortalContext:
        """Migrate the database and make sure a signing key exists."""
        admin = PortalAdmin.open(settings, clock)
        admin.ensure_signing_key()
        access = AccessService(
            admin.sessions,
            admin.sealer,
            clock,
            issuer=settings.issuer,
            audience=settings.service_name,
            lifetime=settings.token_lifetime,
            per_hour=settings.access_per_hour,
        )
        schema = build_schema(introspection=settings.graphql_introspection)
        return cls(
            settings=settings, clock=clock, admin=admin, access=access, graphql_schema=schema
        )

    def published_keys(self) -> list[PublicKey]:
        """The keys verifiers may meet now (current, next, and retired ones still valid)."""
        with self.admin.sessions.begin() as session:
            rows = keyring.published_keys(session, self.admin.now())
            for row in rows:
                if row.kid not in self._public_keys:
                    self._public_keys[row.kid] = keyring.public_key(row)
            return [self._public_keys[row.kid] for row in rows]

    def close(self) -> None:
        self.admin.close()


def get_context(request: Request) -> PortalContext:
    context: PortalContext = request.app.state.ctx
    return context


ContextDep = Annotated[PortalContext, Depends(get_context)]
