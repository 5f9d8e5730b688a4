"""The gateway's own OIDC discovery and JWKS (it signs user tokens and usage-event tokens)."""

from __future__ import annotations

from typing import Any

from codesuggest.common.discovery import discovery_router
from codesuggest.gateway.context import GatewayContext, get_context
from codesuggest.tokens import PublicKey, openid_configuration


def _document(context: GatewayContext) -> dict[str, Any]:
    settings = context.settings
    jwks_uri = settings.public_url.rstrip("/") + "/oauth/discovery/keys"
    return openid_configuration(settings.service_name, jwks_uri)


def _keys(context: GatewayContext) -> list[PublicKey]:
    return list(context.trust.own_keys.keys.values())


router = discovery_router(get_context, _document, _keys)
