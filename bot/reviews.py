"""Flagged AI feedback that waits too long for a coach: who is reminded, once each, and when.

The tick calls this; the outbox keys make every reminder one row, however often it runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nudges.program import Program, ProgramError
from nudges.review import escalations_due
from storage import accounts, people, rehearsals
from storage.models import Person
from storage.outbox import row


async def review_reminders(session: AsyncSession, program: Program, now: datetime) -> list[dict[str, Any]]:
    """Outbox rows for the flagged items nobody decided: after ``nudges.review.REMIND_COACHES_AFTER``
    working days a reminder in the cohort's review channel and a word to the learner that the review is
    still pending; after as many more, a direct message to each of the program's admins."""
    rows: list[dict[str, Any]] = []
    for review_id, learner_id, flagged_at in await rehearsals.awaiting(session):
        due = escalations_due(flagged_at, now)
        if not due:
            continue
        learner = await session.get(Person, learner_id)
        cohorts = await people.participations(session, learner_id)
        try:
            channel = program.cohort(cohorts[0].key).review_channel if cohorts else None
        except ProgramError:  # the learner's cohort left the program
            channel = None
        payload = {"review": review_id}
        if channel is not None:
            key = f"review_reminder:{review_id}:coaches"
            rows.append(
                row(
                    key=key,
                    kind="review_reminder",
                    period="once",
                    due_at=now,
                    platform=channel.platform,
                    target=channel.id,
                    payload=payload,
                )
            )
        if learner is not None:
            key = f"review_pending:{review_id}"
            rows.append(row(key=key, kind="review_pending", period="once", due_at=now, person=learner, payload=payload))
        if "admins" in due:
            for admin in await people.with_role(session, "admin"):
                # Written to where the admin is linked (the program file names no platform for them).
                platform = await accounts.reachable_on(session, admin)
                if platform is None:  # linked nowhere: `program load` and `doctor` report them
                    continue
                key = f"review_reminder:{review_id}:admin:{admin.id}"
                rows.append(
                    row(key=key, kind="review_reminder", period="once", due_at=now, person=admin, platform=platform, payload=payload)
                )
    return rows
