"""The audit log: who did what and when. Callers pass facts, never deleted content or secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry


def record(
    session: AsyncSession, now: datetime, actor: str, action: str, subject: str | None = None, outcome: str = "ok", **detail: Any
) -> None:
    session.add(AuditEntry(at=now, actor=actor, action=action, subject=subject, outcome=outcome, detail=detail))
