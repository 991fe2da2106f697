"""Anonymized export of behavior signals for independent analysis: one CSV row per signal.

People appear only as keyed pseudonyms (HMAC-SHA256 of the internal person id under
REINFORCE_PSEUDONYM_KEY, at least 32 bytes): stable across exports made with the same key,
so an analyst can follow a person over weeks, and meaningless without the key. Names,
emails, platform ids and notes are never read, let alone written. A cohort whose signals
come from fewer people than the program's minimum group size is left out: its key alone
would point at those few. Rows are streamed from the database in batches, so memory stays
flat however many millions of signals there are.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.db import Database
from storage.models import BehaviorSignal, Cohort
from storage.programs import current_program

HEADER = ("pseudonym", "cohort", "behavior", "week", "value", "source")
BATCH = 5000
MIN_KEY_BYTES = 32  # HMAC-SHA256 is as strong as its key: a short one can be guessed offline


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    min_group_size: int = 0
    left_out: tuple[str, ...] = ()  # cohorts with signals from fewer than min_group_size people

    def notes(self) -> list[str]:
        """What the operator should know beyond the row count."""
        if not self.left_out:
            return []
        return [
            f"left out {', '.join(self.left_out)}: signals from fewer than {self.min_group_size} people "
            "(the program's min_group_size), whose cohort key alone would point at them"
        ]


class Pseudonyms:
    """Keyed pseudonyms, computed once per person (an export has far fewer people than rows)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ExportError(
                f"the pseudonym key (REINFORCE_PSEUDONYM_KEY) is {len(key)} bytes; it must be at least {MIN_KEY_BYTES} bytes (UTF-8), "
                "or the pseudonyms could be reversed by guessing it: set it to a long random secret, "
                "for example the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self._key = key
        self._known: dict[int, str] = {}

    def __call__(self, person_id: int) -> str:
        found = self._known.get(person_id)
        if found is None:
            # 16 hex digits (64 bits): collisions are negligible for any cohort size.
            found = hmac.new(self._key, f"person:{person_id}".encode(), hashlib.sha256).hexdigest()[:16]
            self._known[person_id] = found
        return found


async def export_signals(db: Database, key: bytes, out: Path, now: datetime, cohort: str | None = None, actor: str = "cli") -> ExportResult:
    """Write every signal (of one cohort, when given) to ``out`` as CSV; audited.

    Cohorts with signals from fewer people than the program's ``min_group_size`` are left
    out (and named in the result); asking for such a cohort alone is refused. The file is
    written beside ``out`` and renamed into place at the end, so a failed export never
    leaves a truncated file that looks complete.
    """
    pseudonym = Pseudonyms(key)
    async with db.session() as session:
        k, small = await _too_small(session, cohort)
    partial = out.with_name(out.name + ".partial")
    rows = 0
    try:
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            async with db.session() as session:
                query = (
                    select(
                        BehaviorSignal.person_id,
                        Cohort.key,
                        BehaviorSignal.behavior_key,
                        BehaviorSignal.week,
                        BehaviorSignal.value,
                        BehaviorSignal.source,
                    )
                    .join(Cohort, Cohort.id == BehaviorSignal.cohort_id)
                    .where(Cohort.key.not_in(small))
                    .order_by(BehaviorSignal.id)
                )
                if cohort is not None:
                    query = query.where(Cohort.key == cohort)
                # A server-side cursor fetching BATCH rows at a time; each batch is written
                # in a thread so a slow disk never stalls the event loop.
                result = await session.stream(query.execution_options(yield_per=BATCH))
                async for batch in result.partitions():
                    lines = [(pseudonym(p), c, b, w, f"{v:.10g}", s) for p, c, b, w, v, s in batch]
                    await asyncio.to_thread(writer.writerows, lines)
                    rows += len(lines)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    async with db.session() as session:
        left_out: dict[str, Any] = {"left_out": small} if small else {}
        audit.record(session, now, actor, "export.signals", subject=cohort or "all cohorts", rows=rows, file=out.name, **left_out)
    return ExportResult(out, rows, k, tuple(small))


async def _too_small(session: AsyncSession, cohort: str | None) -> tuple[int, list[str]]:
    """The program's minimum group size, and the cohorts whose signals come from fewer people."""
    found = await current_program(session)
    if found is None:
        raise ExportError("no program is loaded yet: run `reinforce program load FILE` first")
    k = found[0].min_group_size
    if cohort is not None and await session.scalar(select(Cohort.id).where(Cohort.key == cohort)) is None:
        raise ExportError(f"no cohort {cohort!r} in the database")
    people = (
        await session.execute(
            select(Cohort.key, func.count(distinct(BehaviorSignal.person_id)))
            .join(Cohort, Cohort.id == BehaviorSignal.cohort_id)
            .group_by(Cohort.key)
            .order_by(Cohort.key)
        )
    ).all()
    small = [key for key, n in people if n < k]
    if cohort is not None and cohort in small:
        raise ExportError(
            f"cohort {cohort!r} has signals from fewer than {k} people (the program's min_group_size), "
            "so it is not exported: its key alone would point at them"
        )
    return k, small
