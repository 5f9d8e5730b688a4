"""The portal's GraphQL schema: `cloudConnectorAccess` (docs/contracts.md section 3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.extensions import DisableIntrospection, MaxAliasesLimiter, MaxTokensLimiter
from strawberry.scalars import JSON

from codesuggest.common.graphql_limits import depth_limit
from codesuggest.portal.access import AccessGrant, AccessService


@dataclass(frozen=True)
class RequestContext:
    service: AccessService
    headers: Mapping[str, str]


@strawberry.type
class ServiceToken:
    token: str
    expires_at: str = strawberry.field(description="ISO-8601 (UTC) expiry of the token.")


@strawberry.type
class AvailableService:
    name: str
    service_start_time: str = strawberry.field(description="ISO-8601 (UTC).")
    bundled_with: list[str] = strawberry.field(description="Add-ons that include the service.")


@strawberry.type
class CloudConnectorAccess:
    service_token: ServiceToken | None
    available_services: list[AvailableService]
    catalog: JSON


def _to_graphql(grant: AccessGrant, audience: str) -> CloudConnectorAccess:
    token = grant.service_token
    return CloudConnectorAccess(
        service_token=None
        if token is None
        else ServiceToken(token=token.token, expires_at=token.expires_at.isoformat()),
        available_services=[
            AvailableService(
                name=s.name,
                service_start_time=s.service_start_time.isoformat(),
                bundled_with=s.bundled_with,
            )
            for s in grant.available_services
        ],
        catalog=cast(JSON, grant.catalog(audience)),  # strawberry's JSON is any JSON value
    )


@strawberry.type
class Query:
    @strawberry.field(description="Check a license and issue an instance token for it.")
    async def cloud_connector_access(
        self, info: strawberry.Info, license_key: str, gitlab_version: str
    ) -> CloudConnectorAccess | None:
        context: RequestContext = info.context
        grant = await run_in_threadpool(
            context.service.check, license_key, gitlab_version, context.headers
        )
        return _to_graphql(grant, context.service.audience)


class PortalSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        """Errors are logged (without secrets) by the HTTP endpoint, not here."""


MAX_DEPTH = 15
"""The standard introspection query's depth; the schema's own queries need 3."""


def build_schema(introspection: bool = False) -> PortalSchema:
    """The schema; introspection is refused unless asked for (`graphql_introspection`), and
    the depth limit counts introspection fields too."""
    extensions: list = [
        lambda: MaxAliasesLimiter(max_alias_count=2),
        lambda: MaxTokensLimiter(max_token_count=1000),
        lambda: depth_limit(MAX_DEPTH),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return PortalSchema(query=Query, extensions=extensions)
