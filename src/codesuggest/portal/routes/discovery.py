"""The portal's OIDC discovery and JWKS: gateways verify instance tokens against these keys."""

from __future__ import annotations

from typing import Any

from codesuggest.common.discovery import discovery_router
from codesuggest.portal.context import PortalContext, get_context
from codesuggest.tokens import openid_configuration


def _document(context: PortalContext) -> dict[str, Any]:
    return openid_configuration(context.settings.issuer)


router = discovery_router(
    get_context, _document, PortalContext.published_keys, include_in_schema=True
)
