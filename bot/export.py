"""Anonymized export of behavior signals for independent analysis: one CSV row per signal.

People appear only as keyed pseudonyms (HMAC-SHA256 of the internal person id under
REINFORCE_PSEUDONYM_KEY): stable across exports made with the same key, so an analyst can
follow a person over weeks, and meaningless without the key. Names, emails, platform ids
and notes are never read, let alone written. Rows are streamed from the database in
batches, so memory stays flat however many millions of signals there are.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from storage import audit
from storage.db import Database
from storage.models import BehaviorSignal, Cohort

HEADER = ("pseudonym", "cohort", "behavior", "week", "value", "source")
BATCH = 5000


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int


class Pseudonyms:
    """Keyed pseudonyms, computed once per person (an export has far fewer people than rows)."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ExportError("the pseudonym key is empty")
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

    The file is written beside ``out`` and renamed into place at the end, so a failed
    export never leaves a truncated file that looks complete.
    """
    pseudonym = Pseudonyms(key)
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
                    .order_by(BehaviorSignal.id)
                )
                if cohort is not None:
                    if await session.scalar(select(Cohort.id).where(Cohort.key == cohort)) is None:
                        raise ExportError(f"no cohort {cohort!r} in the database")
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
        audit.record(session, now, actor, "export.signals", subject=cohort or "all cohorts", rows=rows, file=out.name)
    return ExportResult(out, rows)
