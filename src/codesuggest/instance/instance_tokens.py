"""The instance's own token for the gateway: the newest live portal token (self-managed) or a
self-signed one (SaaS), and the user tokens a SaaS instance signs itself."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from codesuggest.instance.access import InstanceInfo, SeatedUser
from codesuggest.instance.keys import KeyRing
from codesuggest.instance.sync import newest_live_token
from codesuggest.tokens import COMPLETE_CODE, GENERATE_CODE, REALM_SAAS, Clock, Signer

TOKEN_LIFETIME = 3600
REUSE_MARGIN = 300
"""A cached token is replaced this many seconds before it expires."""


class InstanceTokens:
    def __init__(self, keyring: KeyRing, issuer: str, audience: str, clock: Clock) -> None:
        self.keyring = keyring
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.clock = clock
        self._lock = threading.Lock()
        self._saas: tuple[str, str, int] | None = None  # (kid, token, exp)

    def for_gateway(self, session: Session, info: InstanceInfo) -> str | None:
        """The token the instance presents to the gateway; None when it has none."""
        if info.realm != REALM_SAAS:
            return newest_live_token(session, self.clock.now())
        key = self.keyring.signing_key(session)
        with self._lock:
            cached = self._saas
            if cached and cached[0] == key.kid and self.clock.now() < cached[2] - REUSE_MARGIN:
                return cached[1]
            token, claims = Signer(key, self.issuer, self.clock).mint(
                subject=info.instance_uuid,
                audience=[self.audience],
                lifetime=TOKEN_LIFETIME,
                extra={
                    "gitlab_realm": REALM_SAAS,
                    "gitlab_instance_id": info.instance_uuid,
                    "scopes": [COMPLETE_CODE, GENERATE_CODE],
                },
            )
            self._saas = (key.kid, token, claims["exp"])
            return token

    def sign_user_token(self, session: Session, caller: SeatedUser) -> tuple[str, int]:
        """SaaS: the instance's own 1-hour user token (`token_kind: user`)."""
        token, claims = Signer(self.keyring.signing_key(session), self.issuer, self.clock).mint(
            subject=caller.global_user_id,
            audience=self.audience,
            lifetime=TOKEN_LIFETIME,
            extra={
                "gitlab_realm": REALM_SAAS,
                "gitlab_instance_id": caller.info.instance_uuid,
                "scopes": [COMPLETE_CODE],
                "token_kind": "user",
            },
        )
        return token, claims["exp"]
