"""What IDEs report about suggestions (`POST /api/v4/usage_data/track_event`), stored as usage
events beside the ones the gateway ships, so one report joins requests with what users saw.

An IDE event is keyed by (event, `unique_tracking_id`): a resend counts once. A tracking id
belongs to the first user who reported it; another user's report of it is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from codesuggest.instance.access import InstanceInfo
from codesuggest.instance.models import usage_events

MAX_BODY = 16_384
IDE_EVENTS = {
    "code_suggestion_shown_in_ide": "code_suggestion_shown",
    "code_suggestion_accepted_in_ide": "code_suggestion_accepted",
    "code_suggestion_rejected_in_ide": "code_suggestion_rejected",
}
"""GitLab's internal event names the GitLab Language Server sends -> our usage event names."""
SOURCE = "ide"


def _cut(limit: int) -> Callable[[object], object]:
    """Cut a string to `limit`: a long model name must not lose the event."""

    def cut(value: object) -> object:
        return value[:limit] if isinstance(value, str) else value

    return cut


Short = Annotated[str | None, BeforeValidator(_cut(64))]
Long = Annotated[str | None, BeforeValidator(_cut(255))]


class AdditionalProperties(BaseModel):
    """The Language Server's `additional_properties`; fields we do not use are ignored."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    unique_tracking_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    language: Short = None
    model_engine: Long = None
    model_name: Long = None
    suggestion_size: int | None = Field(default=None, ge=0)


class TrackEvent(BaseModel):
    """GitLab's track_event parameters (unknown ones are ignored, as GitLab's API does)."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(min_length=1, max_length=128)
    send_to_snowplow: bool | None = None
    namespace_id: int | None = None
    project_id: int | None = None
    additional_properties: AdditionalProperties | None = None


@dataclass(frozen=True)
class Reporter:
    global_user_id: str
    client_name: str | None
    """The User-Agent of the report (the gateway records the same for the requests)."""
    client_version: str | None
    """X-Gitlab-Language-Server-Version."""
    request_id: str | None


class TrackingIdTaken(Exception):
    """The tracking id was reported by another user."""


def event_id(event: str, tracking_id: str) -> str:
    return hashlib.sha256(f"{SOURCE}:{event}:{tracking_id}".encode()).hexdigest()


def store_event(
    engine: Engine,
    body: TrackEvent,
    properties: AdditionalProperties,
    info: InstanceInfo,
    who: Reporter,
    now: datetime,
) -> bool:
    """Store the event unless it is already stored; True if it was new. Raises TrackingIdTaken."""
    name = IDE_EVENTS[body.event]
    tracking_id = properties.unique_tracking_id
    occurred = now.astimezone(UTC).replace(tzinfo=None)
    t = usage_events.c
    with engine.begin() as conn:
        owner = conn.scalar(
            select(t.global_user_id)
            .where(t.tracking_id == tracking_id, t.source == SOURCE)
            .limit(1)
        )
        if owner is not None and owner != who.global_user_id:
            raise TrackingIdTaken(tracking_id)
        row = {
            "event_id": event_id(body.event, tracking_id),
            "name": name,
            "occurred_at": occurred,
            "day": occurred.date().isoformat(),
            "realm": info.realm,
            "instance_id": info.instance_uuid,
            "global_user_id": who.global_user_id,
            "host_name": info.host_name,
            "language": properties.language,
            "model_provider": properties.model_engine,
            "model_name": properties.model_name,
            "suggestion_chars": None,
            "count": 1,
            "client_name": (who.client_name or "")[:255] or None,
            "client_version": (who.client_version or "")[:64] or None,
            "request_id": (who.request_id or "")[:128] or None,
            "received_at": occurred,
            "source": SOURCE,
            "tracking_id": tracking_id,
        }
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        result = conn.execute(
            dialect.insert(usage_events).on_conflict_do_nothing(index_elements=["event_id"]),
            row,
        )
        return bool(result.rowcount)
