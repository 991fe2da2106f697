"""Data-lifecycle use cases: `reinforce forget PERSON`, and the retention purge every tick runs.

Each is one transaction and audited; the audit entry holds counts and, for a forget, a
salted hash of who it was (see storage.lifecycle), never the deleted content or the email.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from adapters.slack.chat import click_event_prefix
from storage import audit, lifecycle
from storage.db import Database
from storage.lifecycle import LifecycleError
from storage.models import AuditEntry

__all__ = [
    "ForgetReport",
    "LifecycleError",
    "PurgeReport",
    "forget_lines",
    "forget_person",
    "forget_warning",
    "purge_expired",
    "when_forgotten",
]

log = logging.getLogger(__name__)

# Inbound event ids that name a member, by platform: what each id of theirs starts with.
# Only Slack's do (a click's id starts with the user id); Teams' activity ids name nobody.
EVENT_PREFIXES: dict[str, Callable[[str], str | None]] = {"slack": click_event_prefix}

FORGET_ACTION, PURGE_ACTION = "person.forget", "retention.purge"
RETENTION_ACTOR = "retention"
# How the CLI names each table it reports (in this order).
WHAT = {
    "checkin_answers": "answers",
    "behavior_signals": "signals",
    "checkin_notes": "notes",
    "member_weeks": "skipped or snoozed weeks",
    "nudge_feedback": "nudge ratings",
    "rehearsal_sessions": "rehearsals",
    "feedback_reviews": "rehearsal feedback items",
    "consents": "consent records",
    "memberships": "memberships",
    "deliveries": "queued or sent messages",
    "conversation_refs": "conversation references",
    "inbound_events": "platform event ids",
    "people": "person record",
    "audit_log": "audit entries",
    "program_versions": "stored program versions",
    "workspace_installations": "Slack install records",
}


@dataclass(frozen=True)
class ForgetReport:
    """What a forget did; ``receipt`` is the token that stands for the person in rows that stay."""

    who: str
    held: bool
    deleted: dict[str, int]
    redacted: dict[str, int]
    receipt: str
    listed_in_program: bool


async def forget_person(db: Database, who: str, actor: str, now: datetime) -> ForgetReport:
    """Delete everything held about ``who`` (an email or a platform id such as "T0001:U123" or
    "tenant:aad-id"); idempotent: a second call, or an unknown person, finds nothing held.

    Raises LifecycleError when ``who`` is neither an email nor a platform id.
    """
    async with db.session() as session:
        subject = await lifecycle.find_subject(session, who)
        receipt = await asyncio.to_thread(lifecycle.make_receipt, subject.identifier)
        token = lifecycle.receipt_token(receipt)
        done = await lifecycle.forget(session, subject, token, _event_prefixes(subject))
        # The receipt, not the email: the log proves the deletion happened without naming whom.
        audit.record(
            session,
            now,
            actor,
            FORGET_ACTION,
            subject=token,
            held=done.held,
            deleted=done.deleted,
            redacted=done.redacted,
            receipt=receipt,
        )
    return ForgetReport(who.strip(), done.held, done.deleted, done.redacted, token, done.listed_in_program)


async def when_forgotten(db: Database, who: str) -> list[datetime]:
    """When ``who`` (as given to forget: email, or platform id if no email was known) was
    forgotten, from the audit receipts: how an operator answers "did you delete me?"."""
    async with db.session() as session:
        entries = (
            await session.execute(
                select(AuditEntry.at, AuditEntry.detail).where(AuditEntry.action == FORGET_ACTION).order_by(AuditEntry.at)
            )
        ).all()
    found = []
    for at, detail in entries:
        receipt = (detail or {}).get("receipt")
        if isinstance(receipt, dict) and await asyncio.to_thread(lifecycle.receipt_matches, receipt, who):
            found.append(at)
    return found


def _event_prefixes(subject: lifecycle.Subject) -> list[tuple[str, str]]:
    """(platform, prefix) of the event ids that name ``subject``; a member id given without
    its platform may be on any of them."""
    found = []
    for platform, member in subject.member_ids:
        for name, prefix_of in EVENT_PREFIXES.items():
            if platform in (name, None) and (prefix := prefix_of(member)) is not None:
                found.append((name, prefix))
    return found


def forget_lines(report: ForgetReport) -> list[str]:
    """What `reinforce forget` prints: one line of what went, one of what was anonymized."""
    if not report.held:
        return [f"nothing held about {report.who} (audited as {report.receipt})"]
    lines = [f"forgot {report.who}: deleted {_counts(report.deleted) or 'nothing'}"]
    if report.redacted:
        lines.append(f"replaced their name or id with {report.receipt} in {_counts(report.redacted)}")
    lines.append("digests already posted keep their cohort figures; messages already sent in Slack or Teams stay there")
    return lines


def forget_warning(report: ForgetReport) -> str | None:
    """For stderr: a forgotten member still in the program file comes back at the next load."""
    if not report.listed_in_program:
        return None
    return (
        f"{report.who} was listed in the program in force: remove them from the program file, "
        "or the next `reinforce program load` adds them again (and asks for their consent again)"
    )


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: list(WHAT).index(item[0]) if item[0] in WHAT else len(WHAT))
    return ", ".join(f"{n} {WHAT.get(table, table)}" for table, n in ordered if n)


@dataclass(frozen=True)
class PurgeReport:
    notes: int
    transcripts: int
    feedback: int

    def total(self) -> int:
        return self.notes + self.transcripts + self.feedback


async def purge_expired(db: Database, retention_days: int, now: datetime) -> PurgeReport:
    """Delete notes, and empty rehearsal transcripts and feedback text, older than
    ``retention_days`` (REINFORCE_RETENTION_DAYS). Audited with counts, only when something
    was purged: the tick runs this every minute, and an entry per empty run says nothing."""
    cutoff = now - timedelta(days=retention_days)
    async with db.session() as session:
        counts = await lifecycle.purge_before(session, cutoff)
        report = PurgeReport(counts["checkin_notes"], counts["transcripts"], counts["feedback"])
        if report.total():
            audit.record(
                session,
                now,
                RETENTION_ACTOR,
                PURGE_ACTION,
                subject=f"older than {retention_days} days",
                notes=report.notes,
                transcripts=report.transcripts,
                feedback=report.feedback,
                cutoff=cutoff.isoformat(),
            )
    if report.total():
        log.info(
            "retention: purged %d notes, %d transcripts, %d feedback texts older than %d days",
            report.notes,
            report.transcripts,
            report.feedback,
            retention_days,
        )
    return report
