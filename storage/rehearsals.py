"""Rehearsal sessions (transcript, token usage) and the review items of their feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FeedbackReview, RehearsalSession


async def active_session(session: AsyncSession, person_id: int) -> RehearsalSession | None:
    return await session.scalar(
        select(RehearsalSession)
        .where(RehearsalSession.person_id == person_id, RehearsalSession.status == "active")
        .order_by(RehearsalSession.id.desc())
        .limit(1)
    )


async def start_session(session: AsyncSession, person_id: int, scenario_key: str, now: datetime) -> int:
    """A new active session; an earlier one still active is abandoned (one at a time)."""
    await session.execute(
        update(RehearsalSession)
        .where(RehearsalSession.person_id == person_id, RehearsalSession.status == "active")
        .values(status="abandoned", ended_at=now)
    )
    row = RehearsalSession(person_id=person_id, scenario_key=scenario_key, status="active", transcript=[], started_at=now)
    session.add(row)
    await session.flush()
    return row.id


async def save_progress(
    session: AsyncSession,
    session_id: int,
    transcript: list[dict[str, str]],
    prompt_tokens: int,
    completion_tokens: int,
    ended_at: datetime | None = None,
) -> None:
    """Store the transcript so far and add the tokens this step used."""
    values: dict[str, Any] = {
        "transcript": transcript,
        "prompt_tokens": RehearsalSession.prompt_tokens + prompt_tokens,
        "completion_tokens": RehearsalSession.completion_tokens + completion_tokens,
    }
    if ended_at is not None:
        values.update(status="finished", ended_at=ended_at)
    await session.execute(update(RehearsalSession).where(RehearsalSession.id == session_id).values(**values))


async def add_review(
    session: AsyncSession, session_id: int, source: str, feedback: dict[str, Any], status: str, reasons: list[dict[str, str]], now: datetime
) -> int:
    row = FeedbackReview(session_id=session_id, source=source, feedback=feedback, status=status, flag_reasons=reasons, created_at=now)
    session.add(row)
    await session.flush()
    return row.id


async def review_with_session(session: AsyncSession, review_id: int) -> tuple[FeedbackReview, RehearsalSession] | None:
    row = (
        await session.execute(
            select(FeedbackReview, RehearsalSession)
            .join(RehearsalSession, RehearsalSession.id == FeedbackReview.session_id)
            .where(FeedbackReview.id == review_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def decide(session: AsyncSession, review_id: int, status: str, reviewer: str, now: datetime, coach_note: str | None) -> bool:
    """Record a coach's decision once; False if the item was already decided (the first stands)."""
    review = await session.get(FeedbackReview, review_id, with_for_update=True)
    if review is None or review.status != "awaiting_review":
        return False
    review.status = status
    review.reviewer = reviewer
    review.decided_at = now
    if coach_note:
        review.feedback = {**review.feedback, "coach_note": coach_note}
    return True


async def awaiting(session: AsyncSession) -> list[tuple[int, int, datetime]]:
    """(review id, learner's person id, when it was flagged) of the items still awaiting a coach
    (few: only flagged feedback waits, and coaches decide within days)."""
    rows = await session.execute(
        select(FeedbackReview.id, RehearsalSession.person_id, FeedbackReview.created_at)
        .join(RehearsalSession, RehearsalSession.id == FeedbackReview.session_id)
        .where(FeedbackReview.status == "awaiting_review")
        .order_by(FeedbackReview.id)
    )
    return [(review_id, person_id, at) for review_id, person_id, at in rows]
