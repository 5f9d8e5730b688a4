"""Taking access away within a minute: "user tokens of user U issued before T are void".

The admin functions call `record` in the transaction that blocks, deletes, unseats a user or
revokes one of their PATs, so the revocation is stored exactly when the change is; the
`RevocationPusher` (revocation_pusher.py) delivers it to the gateway. `void_before` tells
`direct_access` not to hand out a cached user token the gateway now refuses.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from codesuggest.instance.models import RevocationOutbox

KEEP_AFTER = timedelta(hours=2)
"""Delivered rows are kept this long: past one user-token lifetime every token they void is
expired anyway."""


def record(session: Session, user_id: int, reason: str, now: datetime) -> RevocationOutbox:
    """Void the user's tokens issued up to now. `iat` has one-second resolution, so a token
    issued in the current second is void too (T is the next whole second)."""
    row = RevocationOutbox(
        push_id=str(uuid.uuid4()),
        user_id=user_id,
        issued_before=math.floor(now.timestamp()) + 1,
        reason=reason,
        created_at=now,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def void_before(session: Session, user_id: int) -> int | None:
    """The newest revocation time of the user's tokens (epoch seconds), or None."""
    query = select(func.max(RevocationOutbox.issued_before)).where(
        RevocationOutbox.user_id == user_id
    )
    return session.scalar(query)


def pending(session: Session) -> int:
    query = select(func.count()).where(RevocationOutbox.delivered_at.is_(None))
    return session.scalar(query) or 0
