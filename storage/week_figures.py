"""Figures of closed weeks (the week_figures table): computed from the signals once, then only read.

A digest of a closed week names the figures it needs; those not stored yet are computed
here from the signals (storage.aggregates) and inserted, and then every figure is read
back from the table. A week is closed before anything of it is stored and nothing stored
changes, so every digest of that week shows the same numbers: no two digests can be
subtracted to reveal one late answer (docs/measurement.md). Two processes freezing the
same week at once insert the same rows under the unique (cohort, week, figure) key: the
first insert wins, the other inserts nothing, and both read back the winner's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.intervals import Tally
from nudges.weeks import IsoWeek
from storage import aggregates
from storage.db import insert
from storage.models import WeekFigure

ANSWERED = "answered"  # members who answered at least one question (a count: the tally's n)
DELIVERED = "delivered"  # checklists delivered (a count)

Figures = dict[tuple[IsoWeek, str], Tally]


def answers(behavior: str) -> str:
    """The week's answers to one behavior's question, one per person."""
    return f"answers:{behavior}"


def baseline(behavior: str) -> str:
    """Each person's mean over the baseline weeks up to this one (one value per person)."""
    return f"baseline:{behavior}"


def exposed(behavior: str, min_weeks: int) -> str:
    """Members with answers to ``behavior`` in at least ``min_weeks`` weeks up to this one (a count)."""
    return f"exposed:{behavior}:{min_weeks}"


def exposed_answers(behavior: str, min_weeks: int) -> str:
    """Those exposed members' answers to ``behavior`` this week."""
    return f"exposed_answers:{behavior}:{min_weeks}"


def paired(behavior: str, min_weeks: int) -> str:
    """Exposed members who answered this week and in the baseline weeks: this week's answers."""
    return f"paired:{behavior}:{min_weeks}"


def paired_baseline(behavior: str, min_weeks: int) -> str:
    """The same members' baseline means."""
    return f"paired_baseline:{behavior}:{min_weeks}"


@dataclass(frozen=True)
class Wanted:
    """What one digest needs of one cohort, all from closed weeks.

    Every week's answers and participation from ``first`` to ``week``; with ``exposure``
    (primary behavior, minimum weeks), the exposure figures of ``week``, and with
    ``paired`` too, the exposed members' pairing with their baseline; with ``baseline``
    weeks, each behavior's baseline as of ``week``, stored in the row of the last
    baseline week up to it.
    """

    week: IsoWeek
    first: IsoWeek
    behaviors: tuple[str, ...]
    exposure: tuple[str, int] | None = None
    baseline: tuple[IsoWeek, ...] = ()
    paired: bool = False

    def weeks(self) -> list[IsoWeek]:
        first = min(self.first, self.week)
        return [first + i for i in range(self.week - first + 1)]

    def baseline_weeks(self) -> list[IsoWeek]:
        """The baseline weeks that have closed by ``week`` (a digest of week 1 has one)."""
        return [w for w in self.baseline if w <= self.week]


async def closed_figures(session: AsyncSession, cohort_id: int, wanted: Wanted, now: datetime) -> Figures:
    """The stored figures of ``wanted``'s weeks, after storing those it needs that were missing.

    Every week up to ``wanted.week`` must have closed (bot.digests decides that, with
    nudges.program.Cohort.is_closed): what is stored here is never computed again.
    """
    stored = await read(session, cohort_id, min(wanted.first, wanted.week), wanted.week)
    rows = await _missing(session, cohort_id, wanted, stored)
    if not rows:
        return stored
    await session.execute(
        insert(session, WeekFigure).on_conflict_do_nothing(index_elements=[WeekFigure.cohort_id, WeekFigure.week, WeekFigure.figure]),
        [
            {"cohort_id": cohort_id, "week": str(w), "figure": f, "n": t.n, "total": t.total, "total_sq": t.total_sq, "frozen_at": now}
            for w, f, t in rows
        ],
    )
    return await read(session, cohort_id, min(wanted.first, wanted.week), wanted.week)


async def read(session: AsyncSession, cohort_id: int, first: IsoWeek, last: IsoWeek) -> Figures:
    """Every stored figure of a cohort's weeks from ``first`` to ``last``."""
    rows = await session.execute(
        select(WeekFigure.week, WeekFigure.figure, WeekFigure.n, WeekFigure.total, WeekFigure.total_sq).where(
            WeekFigure.cohort_id == cohort_id, WeekFigure.week >= str(first), WeekFigure.week <= str(last)
        )
    )
    return {(IsoWeek.parse(week), figure): Tally(n, total, sq) for week, figure, n, total, sq in rows}


Row = tuple[IsoWeek, str, Tally]


async def _missing(session: AsyncSession, cohort_id: int, wanted: Wanted, stored: Figures) -> list[Row]:
    """Compute the figures ``wanted`` needs that are not in ``stored``."""
    rows: list[Row] = []
    # A week's answers and participation are stored together; its ANSWERED row marks them.
    weeks = [w for w in wanted.weeks() if (w, ANSWERED) not in stored]
    if weeks:
        rows += await _basics(session, cohort_id, weeks, wanted.behaviors)
    upto = wanted.baseline_weeks()
    if upto and any((upto[-1], baseline(b)) not in stored for b in wanted.behaviors):
        tallies = await aggregates.baseline_tallies(session, cohort_id, upto)
        rows += [(upto[-1], baseline(b), tallies.get(b, Tally())) for b in wanted.behaviors]
    if wanted.exposure is not None:
        behavior, k = wanted.exposure
        names = [exposed(behavior, k), *([paired(behavior, k)] if wanted.paired else [])]
        if any((wanted.week, name) not in stored for name in names):
            rows += await _exposure(session, cohort_id, wanted, behavior, k)
    return rows


async def _basics(session: AsyncSession, cohort_id: int, weeks: Iterable[IsoWeek], behaviors: Iterable[str]) -> list[Row]:
    """Each week's answers per behavior and its participation counts, written even when zero
    (a zero is a figure, and the ANSWERED row marks the week as stored)."""
    weeks = list(weeks)
    tallies = await aggregates.weekly_tallies(session, cohort_id, weeks)
    participation = await aggregates.participation(session, cohort_id, weeks)
    keys = sorted({*behaviors, *(b for _w, b in tallies)})
    rows: list[Row] = []
    for week in weeks:
        rows += [(week, answers(b), tallies.get((week, b), Tally())) for b in keys]
        rows.append((week, DELIVERED, Tally(participation[week].delivered)))
        rows.append((week, ANSWERED, Tally(participation[week].answered)))
    return rows


async def _exposure(session: AsyncSession, cohort_id: int, wanted: Wanted, behavior: str, k: int) -> list[Row]:
    found = await aggregates.exposure(
        session, cohort_id, behavior, wanted.week, k, baseline=wanted.baseline_weeks() if wanted.paired else None
    )
    rows = [(wanted.week, exposed(behavior, k), Tally(found.exposed)), (wanted.week, exposed_answers(behavior, k), found.primary)]
    if wanted.paired:
        now, base = found.paired or (Tally(), Tally())
        rows += [(wanted.week, paired(behavior, k), now), (wanted.week, paired_baseline(behavior, k), base)]
    return rows
