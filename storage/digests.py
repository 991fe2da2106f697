"""Produced digests (the digests table): the figures a cohort-week's digest showed, aggregates only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.weeks import IsoWeek
from storage.db import insert
from storage.models import DigestRecord


async def save(
    session: AsyncSession, cohort_id: int, week: IsoWeek, plan_version: int | None, figures: dict[str, Any], now: datetime
) -> None:
    """Store a digest's figures; a later digest for the same cohort-week replaces them.

    Latest rather than first: answers for a week keep arriving until it is over (and a
    week's digest may be asked for mid-week), so the latest figures are the most complete;
    ``created_at`` says when they were computed.
    """
    values = {"plan_version": plan_version, "figures": figures, "created_at": now}
    stmt = insert(session, DigestRecord).values(cohort_id=cohort_id, week=str(week), **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[DigestRecord.cohort_id, DigestRecord.week], set_=values))


async def stored(session: AsyncSession, cohort_id: int, week: IsoWeek) -> DigestRecord | None:
    return await session.scalar(select(DigestRecord).where(DigestRecord.cohort_id == cohort_id, DigestRecord.week == str(week)))
