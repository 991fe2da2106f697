"""The digest use case end to end: aggregates from the database, plan lock, stored figures, chart, queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from adapters.base import Click
from bot.checkins import record_answers
from bot.cli import main
from bot.digests import DigestError, cohort_digest, digest_key, digest_message, queue_digest, scheduled_digest
from bot.files import load_program
from bot.jobs import tick
from nudges.checklist import ChoiceRef
from nudges.digest import Digest, render_text
from nudges.digest_formats import figures
from nudges.intervals import newcombe
from nudges.messages import Image
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage.db import Database
from storage.models import AuditEntry, BehaviorSignal, Cohort, Delivery, DigestRecord, Membership, PlanVersion, WeekFigure
from storage.programs import save_program
from tests.seed import link, seed_slack_members

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
LOADED = datetime(2026, 1, 2, 9, tzinfo=UTC)
FRIDAY_W10 = datetime(2026, 3, 6, 16, tzinfo=UTC)
W10 = IsoWeek(2026, 10)  # week 9 of pilot-a: the first analysis (2026-03-02) falls in it
FRIDAY_W11 = FRIDAY_W10 + timedelta(weeks=1)  # W10 closed on Thursday (3 days' grace)
HUDDLE = "decision_huddle"


async def load(db: Database, program: Program) -> None:
    async with db.session() as session:
        await save_program(session, program, "test", LOADED)


async def answer_every_week(db: Database, upto: IsoWeek = W10) -> None:
    """Every member answers every question each week; in the last week 12 of pilot-a's 18
    and 6 of wave-b's 16 say yes to the primary behavior, everyone else no."""
    async with db.session() as session:
        members = (
            await session.execute(
                select(Cohort.key, Cohort.id, Membership.person_id)
                .join(Membership, Membership.cohort_id == Cohort.id)
                .where(Membership.role == "participant")
                .order_by(Membership.person_id)
            )
        ).all()
        yes = {"pilot-a": 12, "wave-b": 6}
        rows, rank = [], {"pilot-a": 0, "wave-b": 0}
        for key, cohort_id, person_id in members:
            rank[key] += 1
            for i in range(upto - IsoWeek(2026, 2) + 1):
                week = IsoWeek(2026, 2) + i
                for behavior in (HUDDLE, "escalate_24h", "specific_feedback"):
                    value = 1.0 if week < upto or rank[key] <= yes[key] else 0.0
                    rows.append(
                        dict(
                            person_id=person_id,
                            cohort_id=cohort_id,
                            behavior_key=behavior,
                            week=str(week),
                            value=value,
                            source="checkin",
                            recorded_at=LOADED,
                        )
                    )
        await session.execute(insert(BehaviorSignal), rows)


def changed_primary(program: Program) -> Program:
    data = program.model_dump(mode="json")
    data["cohorts"][0]["plan"]["primary_behavior"] = "escalate_24h"
    return Program.model_validate(data)


@pytest.fixture
async def program(db: Database) -> Program:
    program = load_program(str(EXAMPLE))
    await load(db, program)
    return program


async def count(db: Database, model: type, *where: object) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_first_digest_freezes_the_plan_and_stores_its_figures(db: Database, program: Program) -> None:
    await answer_every_week(db)

    digest = await cohort_digest(db, program, "pilot-a", W10, FRIDAY_W11)

    assert digest.plan is not None and digest.plan.label() == "plan v1, frozen 2026-03-13"
    async with db.session() as session:
        record = await session.scalar(select(DigestRecord))
        audit = (await session.execute(select(AuditEntry.action, AuditEntry.subject))).all()
    assert record is not None and record.week == "2026-W10" and record.plan_version == 1
    assert record.figures == json.loads(json.dumps(figures(digest)))
    assert ("plan.frozen", "pilot-a") in [tuple(a) for a in audit]


async def test_primary_comparison_end_to_end_from_the_database(db: Database, program: Program) -> None:
    await answer_every_week(db)

    digest = await cohort_digest(db, program, "pilot-a", W10, FRIDAY_W11)

    primary = digest.primary
    assert primary is not None and primary.status == "shown"
    assert (digest.members, digest.exposed, digest.comparison_members, digest.comparison_exposed) == (18, 18, 16, 16)
    d, low, high = newcombe(12, 18, 6, 16)
    assert (primary.difference.value, primary.difference.low, primary.difference.high) == pytest.approx((d, low, high))
    assert "difference: +29 points" in render_text(digest)


async def test_a_later_plan_change_is_a_new_version_named_in_every_later_digest(db: Database, program: Program) -> None:
    await cohort_digest(db, program, "pilot-a", IsoWeek(2026, 6), datetime(2026, 2, 6, 16, tzinfo=UTC))
    await cohort_digest(db, program, "pilot-a", IsoWeek(2026, 6), datetime(2026, 2, 6, 17, tzinfo=UTC))
    changed = changed_primary(program)
    await load(db, changed)

    digest = await cohort_digest(db, changed, "pilot-a", IsoWeek(2026, 7), datetime(2026, 2, 10, 9, tzinfo=UTC))
    later = await cohort_digest(db, changed, "pilot-a", IsoWeek(2026, 8), datetime(2026, 2, 20, 16, tzinfo=UTC))

    assert "Analysis plan v2, changed 2026-02-10: primary behavior" in render_text(digest).splitlines()
    assert later.plan is not None and later.plan.label() == "plan v2, changed 2026-02-10: primary behavior"
    assert await count(db, PlanVersion) == 2
    assert await count(db, AuditEntry, AuditEntry.action == "plan.changed") == 1


async def test_before_the_first_analysis_date_the_digest_says_the_comparison_is_not_due(db: Database, program: Program) -> None:
    await answer_every_week(db, upto=IsoWeek(2026, 9))

    text = render_text(await cohort_digest(db, program, "pilot-a", IsoWeek(2026, 9), FRIDAY_W10))

    assert "  not yet due: the first analysis is pre-registered for 2026-03-02" in text.splitlines()


async def test_digest_message_carries_the_chart_as_a_png_image(db: Database, program: Program) -> None:
    await answer_every_week(db)

    message = await digest_message(db, program, "pilot-a", W10, FRIDAY_W11)

    image = next(b for b in message.blocks if isinstance(b, Image))
    assert image.data is not None and image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Pilot A and Wave B" in image.alt


async def test_the_scheduled_digest_reports_last_week_with_this_weeks_counts_so_far(db: Database, program: Program) -> None:
    await answer_every_week(db)

    message = await digest_message(db, program, "pilot-a", W10, FRIDAY_W10)  # W10 open, W09 closed yesterday

    text = message.plain()
    assert "Pilot A, week 8 of 12 (2026-W09)" in text
    assert "Also: 2026-W10 (week 9), still open: no checklists were delivered this week so far" in text
    assert "Week closed on 2026-03-05 00:00 UTC: these figures are final" in text
    async with db.session() as session:
        record = await session.scalar(select(DigestRecord))
    assert record is not None and record.week == "2026-W09" and record.figures["closed"] is True
    assert [w["week"] for w in record.figures["open_weeks"]] == ["2026-W10"]


async def test_an_on_demand_digest_of_an_open_week_shows_counts_only(db: Database, program: Program) -> None:
    await answer_every_week(db)

    digest = await cohort_digest(db, program, "pilot-a", W10, FRIDAY_W10)

    assert (digest.closed, digest.behaviors, digest.primary, digest.series) == (False, (), None, ())
    data = figures(digest)
    assert data["closed"] is False and data["behaviors"] == [] and data["primary"] is None
    assert data["closes_at"] == "2026-03-12T00:00:00+00:00"
    text = render_text(digest)
    assert "This week is still open: its behavior figures are computed once, when it closes on 2026-03-12 00:00 UTC" in text
    assert "%" not in text.split("Participation:")[1].split("\n", 1)[1]  # no rate beyond participation


async def test_no_scheduled_digest_shows_figures_before_the_cohorts_first_week_closes(db: Database, program: Program) -> None:
    await answer_every_week(db)

    digest = await scheduled_digest(db, program, "pilot-a", IsoWeek(2026, 2), datetime(2026, 1, 9, 16, tzinfo=UTC))

    assert digest.week == IsoWeek(2026, 2) and not digest.closed and digest.behaviors == ()


async def test_queue_digest_puts_one_post_per_cohort_week_in_the_outbox(db: Database, program: Program) -> None:
    first = await queue_digest(db, program, "pilot-a", W10, FRIDAY_W10)
    again = await queue_digest(db, program, "pilot-a", W10, FRIDAY_W10 + timedelta(hours=1))

    assert (first.queued, again.queued) == (True, False)
    async with db.session() as session:
        row = await session.scalar(select(Delivery))
    assert row is not None
    assert (row.idempotency_key, row.kind, row.period, row.platform, row.target, row.person_id) == (
        digest_key("pilot-a", W10),
        "digest",
        "2026-W10",
        "slack",
        "C0SPONSOR",
        None,
    )
    assert row.payload == {"cohort": "pilot-a", "week": "2026-W10"}
    assert await count(db, Delivery) == 1


async def test_a_cohort_without_a_sponsor_channel_cannot_be_queued(db: Database, program: Program) -> None:
    data = program.model_dump(mode="json")
    data["cohorts"][0]["sponsor_channel"] = None
    with pytest.raises(DigestError, match="no sponsor_channel"):
        await queue_digest(db, Program.model_validate(data), "pilot-a", W10, FRIDAY_W10)


async def test_a_cohort_not_loaded_into_the_database_is_a_clear_error(db: Database) -> None:
    with pytest.raises(DigestError, match="run `reinforce program load` first"):
        await cohort_digest(db, load_program(str(EXAMPLE)), "pilot-a", W10, FRIDAY_W10)


# --- the command line -----------------------------------------------------------------------


def reinforce(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, url: str) -> tuple[int, str, str]:
    """Run the CLI in this process (a subprocess costs a second of start-up per call)."""
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "MICROSOFT_APP_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_digest_json_has_the_figures_and_post_without_a_platform_is_refused(
    loaded_sqlite: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = reinforce(monkeypatch, capsys, "digest", "pilot-a", "--week", "2026-W10", "--json", url=loaded_sqlite)
    assert code == 0, err
    data = json.loads(out)
    assert data["week"] == "2026-W10" and data["primary"]["status"] == "shown"

    code, out, err = reinforce(monkeypatch, capsys, "digest", "pilot-a", "--week", "2026-W10", "--post", url=loaded_sqlite)
    assert code == 1 and out == ""
    assert err == (
        "reinforce: cannot post: the sponsor channel of 'pilot-a' is on slack, and no slack connection is configured here "
        "(see `reinforce serve` for what to set)\n"
    )


def test_cli_digest_text_for_an_unknown_cohort_is_one_line(
    loaded_sqlite: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = reinforce(monkeypatch, capsys, "digest", "nope", url=loaded_sqlite)

    assert code == 1
    assert err == "reinforce: no cohort 'nope' in the program (known: pilot-a, wave-b)\n"


# --- differencing ---------------------------------------------------------------------------


def behavior_figures(digest: Digest) -> dict[str, object]:
    """Everything a digest says about behavior: per-behavior figures, primary comparison,
    exposure and the chart's series."""
    data = figures(digest)
    return {key: data[key] for key in ("behaviors", "primary", "exposure", "series")}


async def test_no_two_digests_of_a_week_differ_on_a_behavior_figure_as_answers_arrive_one_by_one(db: Database) -> None:
    program = await seed_slack_members(db, 12)  # pilot-a, 12 consenting members in UTC, Slack ids T1:U0..U11
    spec = program.cohort("pilot-a")
    week = IsoWeek(2026, 3)  # pilot-a's second week, which closes on Thursday 2026-01-22 00:00 UTC
    start = datetime(2026, 1, 13, 9, tzinfo=UTC)
    # 36 answers, one every 7 hours from Tuesday of the week to after it closed: each member
    # answers one question at a time, the three questions in turn.
    arrivals = [start + timedelta(hours=7 * i) for i in range(36)]
    assert arrivals[0] < spec.closes_at(week) < arrivals[-1]
    checklist = list(spec.checklist)
    seen: list[Digest] = []
    for i, at in enumerate(arrivals):
        value = "yes" if (i * 5) % 7 < 4 else "no"
        ref = ChoiceRef("pilot-a", week, checklist[i // 12], value)
        await record_answers(db, program, [(Click("slack", f"click-{i}", f"T1:U{i % 12}", ref.encode(), at), ref)])
        asked = at + timedelta(minutes=1)
        seen.append(await cohort_digest(db, program, "pilot-a", week, asked))
        seen.append(await scheduled_digest(db, program, "pilot-a", IsoWeek.of(asked), asked))

    of_week = [d for d in seen if d.week == week]
    still_open = [d for d in of_week if not d.closed]
    closed = [d for d in of_week if d.closed]
    assert still_open and closed
    for digest in still_open:  # counts only
        assert (digest.behaviors, digest.primary, digest.series, digest.exposed) == ((), None, (), None)
        assert figures(digest)["participation"]["answered"] is not None
    shown = {json.dumps(behavior_figures(d), sort_keys=True) for d in closed}
    assert len(shown) == 1, "two digests of the same closed week differ"
    huddle = next(b for b in closed[0].behaviors if b.key == HUDDLE)
    assert huddle.this_week.shown and huddle.this_week.n == 12  # the answers that came before the week closed
    # The week's point on a later week's chart is the same stored figure.
    later = await cohort_digest(db, program, "pilot-a", week + 1, spec.closes_at(week + 1))
    point = next(p for p in later.series if p.week == week)
    assert point.cohort == huddle.this_week


async def test_the_tick_after_a_week_closed_stores_its_figures_before_anyone_asks(db: Database) -> None:
    program = await seed_slack_members(db, 6)
    week = IsoWeek(2026, 2)
    at = datetime(2026, 1, 6, 10, tzinfo=UTC)
    ref = ChoiceRef("pilot-a", week, HUDDLE, "yes")
    await record_answers(db, program, [(Click("slack", f"c{i}", f"T1:U{i}", ref.encode(), at), ref) for i in range(6)])
    closes = program.cohort("pilot-a").closes_at(week)

    await tick(db, program, closes - timedelta(minutes=1))
    assert await count(db, WeekFigure) == 0  # nothing of an open week is stored
    await tick(db, program, closes)
    stored = await count(db, WeekFigure, WeekFigure.week == str(week))

    assert stored > 0
    async with db.session() as session:
        huddle = await session.scalar(select(WeekFigure).where(WeekFigure.figure == f"answers:{HUDDLE}"))
    assert huddle is not None and (huddle.n, huddle.total, huddle.frozen_at) == (6, 6.0, closes)
    await tick(db, program, closes + timedelta(minutes=1))  # later ticks store nothing more
    assert await count(db, WeekFigure, WeekFigure.week == str(week)) == stored


async def test_one_digest_counts_slack_and_teams_members_of_a_cohort(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    async with db.session() as session:
        await save_program(session, program, "examples/program.yaml", LOADED)
        members = program.cohort("pilot-a").members
        answering = [m for m in members if m.platform == "slack"][:3] + [m for m in members if m.platform == "teams"][:3]
        for m in answering:
            await link(session, m.email, m.platform, f"{m.platform}-user-{m.email}", consent=True)
    ref = ChoiceRef("pilot-a", IsoWeek(2026, 2), "decision_huddle", "yes")
    at = datetime(2026, 1, 5, 21, tzinfo=UTC)
    clicks = [(Click(m.platform, f"e-{m.email}", f"{m.platform}-user-{m.email}", ref.encode(), at), ref) for m in answering]
    assert {o.status for o in await record_answers(db, program, clicks)} == {"recorded"}
    digest = await cohort_digest(db, program, "pilot-a", IsoWeek(2026, 2))
    huddle = next(b for b in digest.behaviors if b.key == "decision_huddle")
    assert (huddle.this_week.n, huddle.this_week.value) == (6, 1.0)  # 3 from Slack, 3 from Teams, shown (>= 5)
