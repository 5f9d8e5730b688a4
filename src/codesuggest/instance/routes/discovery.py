"""OIDC discovery and JWKS, so the gateway can verify tokens a SaaS instance signs."""

from __future__ import annotations

from typing import Any

from codesuggest.common.discovery import discovery_router
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.routes.deps import get_context
from codesuggest.tokens import PublicKey, openid_configuration


def _document(context: InstanceContext) -> dict[str, Any]:
    return openid_configuration(context.settings.url.rstrip("/"))


def _keys(context: InstanceContext) -> list[PublicKey]:
    with context.store.session() as session:
        return context.keyring.public_keys(session)


router = discovery_router(get_context, _document, _keys)
