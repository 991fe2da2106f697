"""SQLAlchemy models: the tables that hold people, answers, signals, the outbox and the audit log.

Idempotency lives here as unique constraints; times are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BIGINT primary keys on PostgreSQL, but INTEGER on SQLite where only that autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ProgramVersion(Base):
    """Each distinct program file that was loaded; the newest is the one in force."""

    __tablename__ = "program_versions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(String(1000))
    loaded_at: Mapped[datetime]


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Where the program file says a participant works (their check-ins go there); None for
    # someone listed only as a coach, sponsor or admin, who is written to where last seen.
    platform: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    # Set while the member has paused Reinforce (/reinforce pause); nothing is sent meanwhile.
    paused_at: Mapped[datetime | None]


class Account(Base):
    """A person's account on one chat platform, linked by the bot itself from the program's
    email: looked up at `program load`, or matched when the person first writes to the bot.

    ``user_id`` is the platform's member id as the chat adapter spells it ("TEAM:USER" in
    Slack, "TENANT:AAD-OBJECT-ID" in Teams); storage never looks inside it.
    """

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(200))
    linked_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    __table_args__ = (UniqueConstraint("platform", "user_id"), UniqueConstraint("person_id", "platform"))


class Cohort(Base):
    __tablename__ = "cohorts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    starts: Mapped[date] = mapped_column(Date)
    weeks: Mapped[int] = mapped_column(Integer)
    comparison_key: Mapped[str | None] = mapped_column(String(63))


class Membership(Base):
    """A person's role in a cohort: participant, sponsor, coach (admins have cohort NULL)."""

    __tablename__ = "memberships"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    joined_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("person_id", "cohort_id", "role"),)


class Consent(Base):
    __tablename__ = "consents"
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # pending, accepted, declined, withdrawn
    changed_at: Mapped[datetime]


class Delivery(Base):
    """The outbox: one row per message to send, unique on (person or channel, kind, period)."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # checklist, reminder, nudge, digest, consent
    period: Mapped[str] = mapped_column(String(32))  # e.g. 2026-W02
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    platform: Mapped[str | None] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(200))  # channel id for channel posts
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # pending -> sending (leased) -> sent | pending (retry) | failed; a lease that ran out
    # mid-send makes the row 'verifying': the platform is asked before sending again.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # Where the platform put the message (channel + ts, activity id) so it can be updated.
    message_ref: Mapped[dict[str, Any] | None]
    # Claims read each status's due rows in this order (storage.outbox.claim_due).
    __table_args__ = (Index("ix_deliveries_status_next_attempt_at_id", "status", "next_attempt_at", "id"),)


class InboundEvent(Base):
    """Platform event / action ids already handled: the guard against retries and double clicks."""

    __tablename__ = "inbound_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("platform", "event_id"),)


class CheckinAnswer(Base):
    """A member's answer to one checklist question in one week; the latest click wins."""

    __tablename__ = "checkin_answers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    behavior_key: Mapped[str] = mapped_column(String(63))
    value: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(String(200))
    __table_args__ = (UniqueConstraint("person_id", "cohort_id", "week", "behavior_key"),)


class MemberWeek(Base):
    """A member's choices about one week of a cohort: skip it, or snooze its messages."""

    __tablename__ = "member_weeks"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    skipped_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    __table_args__ = (UniqueConstraint("person_id", "cohort_id", "week"),)


class CheckinNote(Base):
    """The optional free-text note of a weekly check-in; never reaches a sponsor."""

    __tablename__ = "checkin_notes"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("person_id", "cohort_id", "week"),)


class BehaviorSignal(Base):
    """The number an answer (or another source) says about a behavior in a week."""

    __tablename__ = "behavior_signals"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    behavior_key: Mapped[str] = mapped_column(String(63))
    week: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # checkin, ...
    recorded_at: Mapped[datetime]
    __table_args__ = (
        UniqueConstraint("person_id", "cohort_id", "behavior_key", "week", "source"),
        Index("ix_behavior_signals_cohort_week", "cohort_id", "week", "behavior_key"),
    )


class RehearsalSession(Base):
    __tablename__ = "rehearsal_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    scenario_key: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))  # active, finished, abandoned
    transcript: Mapped[list[Any]] = mapped_column(default=list)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class FeedbackReview(Base):
    """One piece of feedback on a rehearsal and its human-review status."""

    __tablename__ = "feedback_reviews"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("rehearsal_sessions.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))  # ai, rubric
    feedback: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # not_reviewed, pending, approved, edited, rejected
    flag_reasons: Mapped[list[Any]] = mapped_column(default=list)
    reviewer: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class DigestRecord(Base):
    """A produced cohort digest (aggregates only), once per cohort and week."""

    __tablename__ = "digests"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    plan_version: Mapped[int | None]
    figures: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("cohort_id", "week"),)


class WeekFigure(Base):
    """One aggregate of a closed week, computed once when a digest first needed it and never changed.

    Every figure is a tally (count, sum, sum of squares); a plain count is a tally's ``n``.
    ``figure`` names what was counted: ``answers:decision_huddle``, ``answered``,
    ``exposed:decision_huddle:6`` (storage.week_figures). Every later digest of the week
    reads these rows, so two digests of it can never be subtracted to reveal one answer.
    """

    __tablename__ = "week_figures"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    figure: Mapped[str] = mapped_column(String(160))
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)
    total_sq: Mapped[float] = mapped_column(Float)
    frozen_at: Mapped[datetime]
    # Freezing is idempotent on this key: a second process freezing the same week inserts nothing.
    __table_args__ = (UniqueConstraint("cohort_id", "week", "figure"),)


class AuditEntry(Base):
    """Who did what and when; ``detail`` never holds deleted content or secrets."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(320))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok, refused
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# Workspace installations made through OAuth. slack_sdk's SQLAlchemy installation and state
# stores own these tables' layout (they are given these names by the chat adapter); they
# are declared here only so that one Alembic history creates them with everything else.
# tests/adapters check the layout still matches the SDK's.
def _installation_columns(*, with_enterprise_url: bool = False) -> list[Column[Any]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
        *([Column("enterprise_url", String(200))] if with_enterprise_url else []),
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", String(200)),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", String(200)),
        Column("bot_token_expires_at", DateTime),
        Column("is_enterprise_install", Boolean, default=False, nullable=False),
        Column("installed_at", DateTime, nullable=False, server_default=func.now()),
    ]


workspace_bots = Table(
    "workspace_bots",
    Base.metadata,
    *_installation_columns(),
    Index("workspace_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

workspace_installations = Table(
    "workspace_installations",
    Base.metadata,
    *_installation_columns(with_enterprise_url=True),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("token_type", String(32)),
    Index("workspace_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)

oauth_states = Table(
    "oauth_states",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)


class ConversationRef(Base):
    """Where a platform lets the bot write proactively: a member's personal chat or a channel.

    ``reference`` is the platform's own opaque reference (a Bot Framework
    ConversationReference, for instance), stored as given and handed back to the adapter.
    """

    __tablename__ = "conversation_refs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str] = mapped_column(String(200), default="")
    # The member's platform user id for a personal chat, or the channel id for a channel.
    target: Mapped[str] = mapped_column(String(300))
    scope: Mapped[str] = mapped_column(String(16))  # personal, channel
    reference: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("platform", "tenant_id", "target"),)


class PlanVersion(Base):
    """A cohort's analysis plan as frozen at its first digest, and each later change."""

    __tablename__ = "plan_versions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    plan: Mapped[dict[str, Any]]
    changed: Mapped[list[Any]] = mapped_column(default=list)  # names of the fields that changed
    frozen_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("cohort_id", "version"),)


class NudgeFeedback(Base):
    """A member's "Useful" / "Not for me" on a coaching nudge."""

    __tablename__ = "nudge_feedback"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    nudge_id: Mapped[str] = mapped_column(String(100))
    week: Mapped[str] = mapped_column(String(8))
    verdict: Mapped[str] = mapped_column(String(16))  # useful, not_for_me
    at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("person_id", "nudge_id", "week"),)


class Heartbeat(Base):
    """A long-running process saying it is alive (the worker, every tick): `reinforce doctor`
    reports how long ago the newest beat was."""

    __tablename__ = "heartbeats"
    process: Mapped[str] = mapped_column(String(200), primary_key=True)  # "worker@host:pid"
    at: Mapped[datetime]
