"""The audit log: who did what and when. Callers pass facts, never deleted content or secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, String
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry

_COLUMNS = AuditEntry.__table__.c


def record(
    session: AsyncSession, now: datetime, actor: str, action: str, subject: str | None = None, outcome: str = "ok", **detail: Any
) -> None:
    # Actors and subjects can come from a request (an unknown user's platform id, a typed
    # cohort key): clipped to their columns, so a hostile one is still audited rather than
    # failing the request on PostgreSQL, which enforces the lengths.
    session.add(
        AuditEntry(
            at=now,
            actor=_clip(actor, _length(_COLUMNS.actor)),
            action=_clip(action, _length(_COLUMNS.action)),
            subject=_clip(subject, _length(_COLUMNS.subject)) if subject is not None else None,
            outcome=outcome,
            detail=detail,
        )
    )


def _length(column: ColumnElement[Any]) -> int:
    """The declared length of a String column."""
    length = cast(String, column.type).length
    assert length is not None
    return length


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
