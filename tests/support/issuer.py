"""A tiny real OIDC issuer built from `codesuggest.tokens`: discovery + JWKS over HTTP, with
key rotation and a fetch counter, for tests that need a trusted issuer on loopback."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from codesuggest.tokens import PrivateKey, Signer, jwks_document, openid_configuration
from codesuggest.tokens.claims import COMPLETE_CODE, DEFAULT_SERVICE_NAME, GENERATE_CODE
from support.servers import ServerThread


class Issuer:
    """Serves its keys at a random port. `signing` signs; `published` is what the JWKS lists."""

    def __init__(self, realm: str = "self-managed", max_age: int = 86400) -> None:
        self.realm = realm
        self.max_age = max_age
        self.signing = PrivateKey.generate()
        self.published: list[PrivateKey] = [self.signing]
        self.jwks_fetches = 0
        self.server = ServerThread(self._app())

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return openid_configuration(self.url)

        @app.get("/oauth/discovery/keys")
        def keys() -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse(
                jwks_document([k.public for k in self.published]),
                headers={"Cache-Control": f"max-age={self.max_age}, public"},
            )

        return app

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Issuer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def rotate(self) -> PrivateKey:
        """Publish a new key and sign with it; the old key stays published."""
        self.signing = PrivateKey.generate()
        self.published.append(self.signing)
        return self.signing

    def instance_token(
        self,
        instance_id: str = "11111111-2222-3333-4444-555555555555",
        *,
        scopes: list[str] | None = None,
        lifetime: float = 3 * 86400,
        clock=None,  # type: ignore[no-untyped-def]
        **extra: Any,
    ) -> str:
        claims = {
            "gitlab_realm": self.realm,
            "gitlab_instance_id": instance_id,
            "scopes": [COMPLETE_CODE, GENERATE_CODE] if scopes is None else scopes,
            **extra,
        }
        token, _ = Signer(self.signing, self.url, clock).mint(
            subject=instance_id, audience=[DEFAULT_SERVICE_NAME], lifetime=lifetime, extra=claims
        )
        return token

    def user_token(
        self,
        global_user_id: str = "user-gid-1",
        instance_id: str = "11111111-2222-3333-4444-555555555555",
        lifetime: float = 3600,
        clock=None,  # type: ignore[no-untyped-def]
    ) -> str:
        """A SaaS instance's self-issued user token (`token_kind: user`)."""
        token, _ = Signer(self.signing, self.url, clock).mint(
            subject=global_user_id,
            audience=DEFAULT_SERVICE_NAME,
            lifetime=lifetime,
            extra={
                "gitlab_realm": self.realm,
                "gitlab_instance_id": instance_id,
                "scopes": [COMPLETE_CODE],
                "token_kind": "user",
            },
        )
        return token


def instance_headers(token: str, instance_id: str, realm: str = "self-managed") -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Gitlab-Authentication-Type": "oidc",
        "X-Gitlab-Instance-Id": instance_id,
        "X-Gitlab-Realm": realm,
    }


def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until true (tests never sleep a fixed time)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)
