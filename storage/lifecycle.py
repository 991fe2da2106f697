"""Forgetting a person and purging old free text: the deletion half of the Trust promises.

Both operations are idempotent and return counts per table. Nothing they delete is ever
copied anywhere else; where a row must stay (an audit entry, a coach's decision, a
channel's conversation reference) the person's identifiers in it are replaced by an
opaque token instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Result, Text, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nudges.program import ProgramError, parse_program
from storage import accounts
from storage.models import (
    Account,
    AuditEntry,
    BehaviorSignal,
    CheckinAnswer,
    CheckinNote,
    Consent,
    ConversationRef,
    Delivery,
    FeedbackReview,
    InboundEvent,
    Membership,
    MemberWeek,
    NudgeFeedback,
    Person,
    ProgramVersion,
    RehearsalSession,
    workspace_installations,
)

PLATFORMS = ("slack", "teams")
# PBKDF2 makes checking a guessed email against a receipt slow enough that nobody runs a
# directory of addresses through the audit log, and quick enough for one `forget`.
RECEIPT_SCHEME, RECEIPT_ITERATIONS = "pbkdf2-sha256", 100_000
TOKEN_PREFIX = "forgotten:"
# Free text of a rehearsal's feedback that the retention purge keeps: scores, not words.
KEPT_FEEDBACK = ("source", "confidence")
KEPT_CRITERION = ("criterion", "score")
_CHUNK = 500


class LifecycleError(ValueError):
    """The person to forget cannot be identified as given; the message says why."""


@dataclass(frozen=True)
class Subject:
    """Who is being forgotten: their person row when one exists, and every string that names them."""

    person: Person | None
    email: str | None
    member_ids: tuple[tuple[str | None, str], ...]  # (platform or None when unknown, member id)

    @property
    def identifier(self) -> str:
        """What a receipt hashes: the email when known (what people ask about), else the id given."""
        return self.email or self.member_ids[0][1]

    def raw_ids(self) -> set[str]:
        """The platform's own user id inside each member id ("U123" of "T0001:U123", the AAD id of "tenant:aad")."""
        return {member.partition(":")[2] for _p, member in self.member_ids if ":" in member}

    def needles(self) -> set[str]:
        """Strings that, standing alone in a field, name this person."""
        return {n for n in (self.email, *(m for _p, m in self.member_ids)) if n}


@dataclass
class Forgotten:
    """Rows deleted and rows kept but stripped of the person's identifiers, per table."""

    deleted: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    listed_in_program: bool = False

    @property
    def held(self) -> bool:
        return any(self.deleted.values()) or any(self.redacted.values())

    def count(self, kind: dict[str, int], table: str, rows: int) -> None:
        if rows:
            kind[table] = kind.get(table, 0) + rows


async def find_subject(session: AsyncSession, who: str) -> Subject:
    """Read ``who`` as an email, a member id ("T0001:U123", "tenant:aad") or a platform-qualified
    member id ("slack:T0001:U123"); raises LifecycleError for anything else or an ambiguous id."""
    text = who.strip()
    if "@" in text:
        email = text.lower()
        person = await session.scalar(select(Person).where(Person.email == email))
        ids = tuple((await accounts.linked(session, [person.id])).get(person.id, {}).items()) if person is not None else ()
        return Subject(person, email, ids)
    platform, _, rest = text.partition(":")
    platform_given = platform in PLATFORMS and ":" in rest
    member = rest if platform_given else text
    if ":" not in member or not all(member.split(":", 1)) or len(member) > 300:
        raise LifecycleError(f"{who[:80]!r} is neither an email nor a platform id like T0001:U123 (Slack) or TENANT:AAD-ID (Teams)")
    query = select(Account.platform, Person).join(Person, Person.id == Account.person_id).where(Account.user_id == member)
    if platform_given:
        query = query.where(Account.platform == platform)
    found = list(await session.execute(query))
    if len(found) > 1:
        platforms = ", ".join(sorted(p for p, _person in found))
        raise LifecycleError(f"{member} names people on {platforms}; say which, e.g. {found[0][0]}:{member}")
    known_platform, person = found[0] if found else (platform if platform_given else None, None)
    if person is None:
        return Subject(None, None, ((known_platform, member),))
    ids = tuple((await accounts.linked(session, [person.id])).get(person.id, {}).items())
    return Subject(person, person.email, ids)


def make_receipt(identifier: str, salt: bytes | None = None) -> dict[str, Any]:
    """A salted, slow hash of who was forgotten: lets an operator confirm "was X forgotten?"
    given X, and tells nobody who X was otherwise. CPU-bound (run it in a thread)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", identifier.strip().lower().encode(), salt, RECEIPT_ITERATIONS)
    return {"scheme": RECEIPT_SCHEME, "iterations": RECEIPT_ITERATIONS, "salt": salt.hex(), "hash": digest.hex()}


def receipt_token(receipt: dict[str, Any]) -> str:
    """The short stand-in that replaces the person's identifiers in rows that stay."""
    return TOKEN_PREFIX + str(receipt["hash"])[:16]


def receipt_matches(receipt: dict[str, Any], identifier: str) -> bool:
    if receipt.get("scheme") != RECEIPT_SCHEME:
        return False
    salt = bytes.fromhex(str(receipt["salt"]))
    digest = hashlib.pbkdf2_hmac("sha256", identifier.strip().lower().encode(), salt, int(receipt["iterations"]))
    return hmac.compare_digest(digest.hex(), str(receipt["hash"]))


async def forget(session: AsyncSession, subject: Subject, token: str, events: Iterable[tuple[str, str]] = ()) -> Forgotten:
    """Delete every row about ``subject`` and strip their identifiers from the rows that stay
    (audit entries, coaches' decisions, channel references, stored program files, the Slack
    installer record). Posted digests hold aggregates only and are left as they are.

    ``events`` are (platform, prefix) pairs: the inbound event ids starting with a prefix are
    the person's too. Which ids name a person is the adapters' knowledge (bot.lifecycle
    asks them); storage only deletes what starts with it.
    """
    done = Forgotten()
    person = subject.person
    if person is not None:
        await _delete_personal_rows(session, person, done)
    await _delete_references(session, subject, done)
    await _delete_events(session, events, done)
    await _redact(session, subject, token, done)
    if person is not None:
        await session.execute(delete(Person).where(Person.id == person.id))
        done.count(done.deleted, "people", 1)
    return done


async def _delete_personal_rows(session: AsyncSession, person: Person, done: Forgotten) -> None:
    pid = person.id
    sessions = list(await session.scalars(select(RehearsalSession.id).where(RehearsalSession.person_id == pid)))
    reviews = list(await session.scalars(select(FeedbackReview.id).where(FeedbackReview.session_id.in_(sessions)))) if sessions else []
    if reviews:
        # A review item queued for the coaches' channel would otherwise post "no longer exists".
        queued = await session.execute(select(Delivery.id, Delivery.payload).where(Delivery.kind == "review"))
        stale = [i for i, payload in queued if isinstance(payload, dict) and payload.get("review") in reviews]
        done.count(done.deleted, "deliveries", await _delete_ids(session, Delivery, stale))
        done.count(done.deleted, "feedback_reviews", await _delete_ids(session, FeedbackReview, reviews))
    done.count(done.deleted, "rehearsal_sessions", await _delete_ids(session, RehearsalSession, sessions))
    # The platform's event ids of their clicks are idempotency guards that would outlive them.
    events = list(await session.scalars(select(CheckinAnswer.event_id).where(CheckinAnswer.person_id == pid)))
    for chunk in _chunks(events):
        result = await session.execute(
            delete(InboundEvent).where(InboundEvent.platform == person.platform, InboundEvent.event_id.in_(chunk))
        )
        done.count(done.deleted, "inbound_events", _rowcount(result))
    for model in (CheckinAnswer, BehaviorSignal, CheckinNote, MemberWeek, NudgeFeedback, Delivery, Consent, Membership):
        result = await session.execute(delete(model).where(model.person_id == pid))
        done.count(done.deleted, model.__tablename__, _rowcount(result))


async def _delete_references(session: AsyncSession, subject: Subject, done: Forgotten) -> None:
    """Their personal conversation references."""
    for platform, member in subject.member_ids:
        query = delete(ConversationRef).where(ConversationRef.target == member, ConversationRef.scope == "personal")
        if platform is not None:
            query = query.where(ConversationRef.platform == platform)
        done.count(done.deleted, "conversation_refs", _rowcount(await session.execute(query)))


async def _delete_events(session: AsyncSession, events: Iterable[tuple[str, str]], done: Forgotten) -> None:
    for platform, prefix in events:
        query = delete(InboundEvent).where(InboundEvent.platform == platform, InboundEvent.event_id.startswith(prefix, autoescape=True))
        done.count(done.deleted, "inbound_events", _rowcount(await session.execute(query)))


async def _redact(session: AsyncSession, subject: Subject, token: str, done: Forgotten) -> None:
    names = _Namer(subject, token)
    if subject.email:
        result = await session.execute(update(FeedbackReview).where(FeedbackReview.reviewer == subject.email).values(reviewer=token))
        done.count(done.redacted, "feedback_reviews", _rowcount(result))
        done.listed_in_program = await _redact_programs(session, subject.email, done)
    await _redact_audit(session, names, done)
    await _redact_channel_references(session, subject, names, done)
    await _redact_installations(session, subject, done)


async def _redact_audit(session: AsyncSession, names: _Namer, done: Forgotten) -> None:
    needles = names.needles
    if not needles:
        return
    detail = cast(AuditEntry.detail, Text)
    query = select(AuditEntry).where(
        or_(
            *(c.contains(n, autoescape=True) for n in needles for c in (AuditEntry.actor, AuditEntry.subject, detail)),
            *(detail.contains(_json_escaped(n), autoescape=True) for n in needles),
        )
    )
    for entry in await session.scalars(query):
        actor, subject_, detail_ = names.scrub(entry.actor), names.scrub(entry.subject), names.scrub(entry.detail)
        if (actor, subject_, detail_) != (entry.actor, entry.subject, entry.detail):
            entry.actor, entry.subject, entry.detail = actor, subject_, detail_
            done.count(done.redacted, "audit_log", 1)


async def _redact_channel_references(session: AsyncSession, subject: Subject, names: _Namer, done: Forgotten) -> None:
    """A channel's reference keeps whoever last wrote to the bot there (Teams puts the sender in
    it); the channel stays reachable, the sender is dropped."""
    raw = subject.raw_ids()
    if not raw:
        return
    text = cast(ConversationRef.reference, Text)
    refs = await session.scalars(select(ConversationRef).where(or_(*(text.contains(r, autoescape=True) for r in raw))))
    for ref in refs:
        reference = dict(ref.reference)
        user = reference.get("user")
        if isinstance(user, dict) and (raw & {str(v) for v in user.values()} or names.scrub(user) != user):
            reference["user"] = None
        reference = names.scrub(reference, extra=raw)
        if reference != ref.reference:
            ref.reference = reference
            done.count(done.redacted, "conversation_refs", 1)


async def _redact_installations(session: AsyncSession, subject: Subject, done: Forgotten) -> None:
    """A Slack workspace's install record names the member who installed the app; the install
    itself (the bot token) must keep working, so only the installer is removed."""
    table = workspace_installations
    for platform, member in subject.member_ids:
        team, _, user = member.partition(":")
        if platform not in ("slack", None) or not user:
            continue
        result = await session.execute(
            update(table)
            .where(table.c.team_id == team, table.c.user_id == user)
            .values(user_id="", user_token=None, user_refresh_token=None, user_scopes=None)
        )
        done.count(done.redacted, "workspace_installations", _rowcount(result))


async def _redact_programs(session: AsyncSession, email: str, done: Forgotten) -> bool:
    """Remove the person from every stored program version; True if the one in force listed them."""
    text = cast(ProgramVersion.content, Text)
    latest = await session.scalar(select(func.max(ProgramVersion.id)))
    listed = False
    query = select(ProgramVersion).where(or_(text.contains(email, autoescape=True), text.contains(_json_escaped(email), autoescape=True)))
    for version in await session.scalars(query):
        content = _without_person(version.content, email)
        if content == version.content:
            continue
        listed = listed or version.id == latest
        version.content = content
        # An old version this code no longer reads keeps its hash; its text is clean all the same.
        with contextlib.suppress(ProgramError):
            version.content_hash = parse_program(content, f"program version {version.id}").content_hash()
        done.count(done.redacted, "program_versions", 1)
    return listed


def _without_person(content: dict[str, Any], email: str) -> dict[str, Any]:
    def others(emails: Any) -> Any:
        return [e for e in emails if not (isinstance(e, str) and e.strip().lower() == email)] if isinstance(emails, list) else emails

    result = {**content, "admins": others(content.get("admins", []))}
    cohorts = []
    for cohort in content.get("cohorts") or []:
        if isinstance(cohort, dict):
            members = cohort.get("members")
            cohort = {**cohort, "sponsors": others(cohort.get("sponsors", [])), "coaches": others(cohort.get("coaches", []))}
            if isinstance(members, list):
                cohort["members"] = [m for m in members if not (isinstance(m, dict) and str(m.get("email", "")).strip().lower() == email)]
        cohorts.append(cohort)
    result["cohorts"] = cohorts
    return result


class _Namer:
    """Finds the person's identifiers inside any value and replaces them with the token.

    Matching respects identifier boundaries, so forgetting "T1:U12" leaves "T1:U123" alone.
    """

    def __init__(self, subject: Subject, token: str) -> None:
        self.needles = subject.needles()
        self.token = token
        self._pattern = self._compile(self.needles)

    @staticmethod
    def _compile(needles: Iterable[str]) -> re.Pattern[str] | None:
        ordered = sorted(set(needles), key=len, reverse=True)
        if not ordered:
            return None
        return re.compile(r"(?<![\w.@+-])(?:" + "|".join(map(re.escape, ordered)) + r")(?![\w@-]|\.\w)", re.IGNORECASE)

    def scrub(self, value: Any, extra: Iterable[str] = ()) -> Any:
        pattern = self._compile([*self.needles, *extra]) if extra else self._pattern
        return _replace(value, pattern, self.token) if pattern is not None else value


def _replace(value: Any, pattern: re.Pattern[str], token: str) -> Any:
    if isinstance(value, str):
        return pattern.sub(token, value)
    if isinstance(value, dict):
        return {_replace(k, pattern, token): _replace(v, pattern, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, pattern, token) for v in value]
    return value


def _json_escaped(text: str) -> str:
    """How ``text`` looks inside stored JSON (non-ASCII characters are written as \\u escapes)."""
    return json.dumps(text)[1:-1]


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (SQLAlchemy's types give every execute a plain Result)."""
    return (result.rowcount or 0) if isinstance(result, CursorResult) else 0


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def _delete_ids(session: AsyncSession, model: Any, ids: list[int]) -> int:
    count = 0
    for chunk in _chunks(ids):
        count += _rowcount(await session.execute(delete(model).where(model.id.in_(chunk))))
    return count


# --- retention ------------------------------------------------------------------------------


async def purge_before(session: AsyncSession, cutoff: datetime) -> dict[str, int]:
    """Delete check-in notes written before ``cutoff``, empty the transcripts of rehearsals that
    ended before it, and strip the words from feedback created before it (scores stay).

    Rehearsal rows stay for their counts (scenario, status, tokens used); running it again
    finds nothing more to do.
    """
    notes = await session.execute(delete(CheckinNote).where(CheckinNote.written_at < cutoff))
    ended = func.coalesce(RehearsalSession.ended_at, RehearsalSession.started_at)
    transcripts = await session.execute(
        update(RehearsalSession).where(ended < cutoff, func.json_array_length(RehearsalSession.transcript) > 0).values(transcript=[])
    )
    feedback = 0
    old = await session.execute(
        select(FeedbackReview.id, FeedbackReview.feedback).where(
            FeedbackReview.created_at < cutoff, FeedbackReview.feedback["purged"].as_boolean().is_(None)
        )
    )
    for review_id, content in old.all():
        await session.execute(update(FeedbackReview).where(FeedbackReview.id == review_id).values(feedback=_scores_only(content)))
        feedback += 1
    return {"checkin_notes": _rowcount(notes), "transcripts": _rowcount(transcripts), "feedback": feedback}


def _scores_only(feedback: Any) -> dict[str, Any]:
    """Feedback without its words (suggestions, quotes of the leader, next step, coach note)."""
    content = feedback if isinstance(feedback, dict) else {}
    kept: dict[str, Any] = {k: content[k] for k in KEPT_FEEDBACK if k in content}
    criteria = content.get("criteria")
    if isinstance(criteria, list):
        kept["criteria"] = [{k: c[k] for k in KEPT_CRITERION if k in c} for c in criteria if isinstance(c, dict)]
    kept["purged"] = True
    return kept
