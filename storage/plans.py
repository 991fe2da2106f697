"""Frozen analysis-plan versions of each cohort (the plan_versions table).

nudges.plan decides whether the plan in force is a new version; this module reads the
history and inserts the new row so that two digests produced at once agree on the result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.plan import PlanVersion, next_version
from storage.db import insert
from storage.models import PlanVersion as PlanVersionRow


async def history(session: AsyncSession, cohort_id: int) -> list[PlanVersion]:
    """Every frozen version of a cohort's plan, oldest first."""
    rows = await session.scalars(select(PlanVersionRow).where(PlanVersionRow.cohort_id == cohort_id).order_by(PlanVersionRow.version))
    return [PlanVersion(r.version, r.content_hash, r.plan, tuple(r.changed), r.frozen_at) for r in rows]


async def lock(session: AsyncSession, cohort_id: int, current: dict[str, Any], now: datetime) -> tuple[PlanVersion, bool]:
    """Freeze ``current`` as version 1, or as the next version when it differs from the
    latest; returns the version in force and whether this call created it.

    The insert tolerates a concurrent digest having just inserted the same version number
    (unique cohort_id, version): the history is then read again and the winner's row used.
    """
    versions = await history(session, cohort_id)
    new = next_version(versions, current)
    if new is None:
        return versions[-1], False
    stmt = insert(session, PlanVersionRow).values(
        cohort_id=cohort_id, version=new.version, content_hash=new.content_hash, plan=new.plan, changed=new.changed, frozen_at=now
    )
    created = (
        await session.execute(
            stmt.on_conflict_do_nothing(index_elements=[PlanVersionRow.cohort_id, PlanVersionRow.version]).returning(PlanVersionRow.id)
        )
    ).first() is not None
    return (await history(session, cohort_id))[-1], created
