"""Names shared by every part (docs/contracts.md sections 1 and 2)."""

from collections.abc import Mapping
from typing import Any, Final

COMPLETE_CODE = "complete_code"
GENERATE_CODE = "generate_code"
REALM_SAAS: Final = "saas"
REALM_SELF_MANAGED: Final = "self-managed"
DEFAULT_SERVICE_NAME = "gitlab-ai-gateway"
ADDON_SCOPES = {"code_suggestions": [COMPLETE_CODE, GENERATE_CODE]}


def is_user_token(claims: Mapping[str, Any], service_name: str = DEFAULT_SERVICE_NAME) -> bool:
    """A user token is one the gateway issued, or one explicitly marked `token_kind: user`."""
    return claims.get("iss") == service_name or claims.get("token_kind") == "user"
