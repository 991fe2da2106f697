"""Digest use case: gather a cohort's aggregates from the database and compute its figures."""

from __future__ import annotations

from sqlalchemy import select

from nudges.digest import BASELINE_WEEKS, Digest, build_digest
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import aggregates
from storage.db import Database
from storage.models import Cohort


async def cohort_digest(db: Database, program: Program, cohort_key: str, week: IsoWeek) -> Digest:
    """Figures for one cohort and week; the comparison cohort's week is included when named."""
    spec = program.cohort(cohort_key)
    first = IsoWeek.of(spec.starts)
    weeks = {week, *(first + i for i in range(BASELINE_WEEKS))}
    async with db.session() as session:
        ids = dict((await session.execute(select(Cohort.key, Cohort.id))).all())
        cohort_id = ids.get(spec.key)
        if cohort_id is None:
            raise ValueError(f"cohort {spec.key!r} is not in the database: run `reinforce program load` first")
        tallies = await aggregates.signal_tallies(session, cohort_id, weeks)
        participation = await aggregates.participation(session, cohort_id, week)
        comparison = None
        if spec.comparison and spec.comparison in ids:
            comparison = await aggregates.signal_tallies(session, ids[spec.comparison], [week])
    return build_digest(program, spec, week, tallies, participation, comparison)
