"""Who is calling and what this instance is: the synchronous, database half of every request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from codesuggest.instance import errors, revocations
from codesuggest.instance.identity import (
    Authenticated,
    authenticate,
    global_user_id,
    pat_from_headers,
    require_ai_scope,
)
from codesuggest.instance.models import ApplicationSettings
from codesuggest.instance.seats import has_seat
from codesuggest.instance.store import Store, application_settings

FEATURE_ENABLEMENT = "duo_pro"


@dataclass(frozen=True)
class InstanceInfo:
    """A snapshot of the application settings row."""

    instance_uuid: str
    realm: str
    host_name: str
    version: str
    gateway_url: str
    edge_url: str | None
    disabled_direct_code_suggestions: bool
    model_provider: str | None
    model_name: str | None
    code_suggestions_contexts: tuple[str, ...] = ()

    @classmethod
    def of(cls, row: ApplicationSettings) -> InstanceInfo:
        return cls(
            instance_uuid=row.instance_uuid,
            realm=row.realm,
            host_name=row.host_name,
            version=row.version,
            gateway_url=row.gateway_url,
            edge_url=row.edge_url,
            disabled_direct_code_suggestions=row.disabled_direct_code_suggestions,
            model_provider=row.model_provider,
            model_name=row.model_name,
            code_suggestions_contexts=tuple(row.code_suggestions_contexts.split()),
        )

    @property
    def edge_base(self) -> str:
        """The edge (Cloud Connector); the one-machine gateway answers the edge routes itself."""
        return (self.edge_url or self.gateway_url).rstrip("/")

    @property
    def base_url(self) -> str:
        return f"{self.edge_base}/ai"

    @property
    def mint_url(self) -> str:
        return f"{self.edge_base}/auth/v1/code/user_access_token"

    @property
    def model_details(self) -> dict[str, str] | None:
        if self.model_provider and self.model_name:
            return {"model_provider": self.model_provider, "model_name": self.model_name}
        return None


@dataclass(frozen=True)
class SeatedUser:
    """A user code suggestions may serve: a valid PAT with an AI scope and a seat."""

    auth: Authenticated
    info: InstanceInfo
    global_user_id: str
    void_before: int | None = None
    """The user's tokens issued before this (epoch s) are revoked: none may be handed out."""

    def gitlab_headers(self) -> dict[str, str]:
        """The `x-gitlab-*` headers for the gateway, as `direct_access` hands them to clients."""
        return {
            "x-gitlab-global-user-id": self.global_user_id,
            "x-gitlab-instance-id": self.info.instance_uuid,
            "x-gitlab-realm": self.info.realm,
            "x-gitlab-host-name": self.info.host_name,
            "x-gitlab-version": self.info.version,
            "x-gitlab-feature-enablement-type": FEATURE_ENABLEMENT,
            "X-Gitlab-Authentication-Type": "oidc",
        }


def authenticated_user(
    store: Store, private_token: str | None, authorization: str | None, now: datetime
) -> tuple[Authenticated, InstanceInfo]:
    """Any valid PAT (read_api is enough)."""
    with store.session() as session:
        auth = authenticate(session, pat_from_headers(private_token, authorization), now)
        return auth, InstanceInfo.of(application_settings(session))


def seated_user(
    store: Store, private_token: str | None, authorization: str | None, now: datetime
) -> SeatedUser:
    """PAT (401) -> AI scope (403 insufficient_scope) -> seat (403). Raises InstanceError."""
    with store.session() as session:
        auth = authenticate(session, pat_from_headers(private_token, authorization), now)
        require_ai_scope(auth)
        info = InstanceInfo.of(application_settings(session))
        if not has_seat(session, auth.user_id, info.realm):
            raise errors.forbidden("User has no code suggestions seat assigned")
        gid = global_user_id(store.secret, info.instance_uuid, auth.user_id)
        void_before = revocations.void_before(session, auth.user_id)
    return SeatedUser(auth=auth, info=info, global_user_id=gid, void_before=void_before)
