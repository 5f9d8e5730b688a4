"""Keys, JWKS documents, signing and verification: the one place for JWT code.

Every part imports from here; nothing here imports any other part of codesuggest.
"""

from codesuggest.tokens.claims import (
    COMPLETE_CODE,
    GENERATE_CODE,
    REALM_SAAS,
    REALM_SELF_MANAGED,
    is_user_token,
)
from codesuggest.tokens.clock import Clock, ManualClock, SystemClock
from codesuggest.tokens.errors import TokenError
from codesuggest.tokens.keys import (
    PrivateKey,
    PublicKey,
    jwks_document,
    openid_configuration,
    parse_jwks,
)
from codesuggest.tokens.keysets import KeySource, LocalKeySet
from codesuggest.tokens.remote import RemoteKeySet
from codesuggest.tokens.signing import Signer
from codesuggest.tokens.verify import Verifier

__all__ = [
    "COMPLETE_CODE",
    "GENERATE_CODE",
    "REALM_SAAS",
    "REALM_SELF_MANAGED",
    "Clock",
    "KeySource",
    "LocalKeySet",
    "ManualClock",
    "PrivateKey",
    "PublicKey",
    "RemoteKeySet",
    "Signer",
    "SystemClock",
    "TokenError",
    "Verifier",
    "is_user_token",
    "jwks_document",
    "openid_configuration",
    "parse_jwks",
]
