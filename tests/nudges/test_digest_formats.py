"""Tests for nudges/digest_formats.py: the JSON figures and the chat message of a digest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nudges.digest import Digest, GroupAggregates
from nudges.digest_formats import chart_alt, digest_message, figures
from nudges.messages import Context, Header, Image, Section
from nudges.program import Program
from tests.nudges.test_digest import PLAN, THIS_WEEK, W09, _example, make, pilot, yes_no


@pytest.fixture
def program() -> Program:
    return _example()


@pytest.fixture
def digest(program: Program) -> Digest:
    return make(program)


def behavior(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(b for b in data["behaviors"] if b["key"] == key)


def test_figures_are_plain_json(digest: Digest) -> None:
    data = figures(digest)

    assert json.loads(json.dumps(data)) == data
    assert data["week"] == "2026-W10" and data["cohort"] == {"key": "pilot-a", "name": "Pilot A"}
    assert data["plan"]["label"] == "plan v1, frozen 2026-01-16" and data["plan"]["version"] == 1


def test_figures_hold_the_same_numbers_as_the_digest(digest: Digest) -> None:
    data = figures(digest)

    huddle = behavior(data, "decision_huddle")
    assert huddle["this_week"] == {
        "value": 0.7,
        "low": pytest.approx(0.3968, abs=1e-4),
        "high": pytest.approx(0.8922, abs=1e-4),
        "n": 10,
        "suppressed": False,
    }
    assert data["primary"]["status"] == "shown"
    assert data["primary"]["difference"] == {
        "value": pytest.approx(0.2),
        "low": pytest.approx(0.0524, abs=1e-4),
        "high": pytest.approx(0.3339, abs=1e-4),
        "suppressed": False,
        "interval": "newcombe_hybrid_score",
    }
    assert data["participation"] == {
        "week": "2026-W10",
        "delivered": 18,
        "answered": 15,
        "rate": pytest.approx(15 / 18, abs=1e-6),
        "suppressed": False,
    }
    assert data["exposure"]["cohort"] == {"exposed": {"value": 14, "suppressed": False}, "members": {"value": 18, "suppressed": False}}


def test_a_suppressed_figure_is_null_with_a_marker_and_no_count(digest: Digest) -> None:
    escalate = behavior(figures(digest), "escalate_24h")

    assert escalate["baseline"] == {"value": None, "low": None, "high": None, "n": None, "suppressed": True}
    assert escalate["comparison"]["suppressed"] is True and escalate["comparison"]["n"] is None


def test_an_empty_figure_is_null_with_zero_responses_and_not_suppressed(digest: Digest) -> None:
    assert behavior(figures(digest), "specific_feedback")["this_week"] == {
        "value": None,
        "low": None,
        "high": None,
        "n": 0,
        "suppressed": False,
    }


def test_suppressed_counts_are_null_with_a_marker(digest: Digest) -> None:
    data = figures(digest)

    assert data["rehearsals"] == {"value": 7, "suppressed": False}
    assert data["awaiting_review"] == {"value": None, "suppressed": True}


def test_a_cohort_of_four_has_no_number_about_its_members_in_json(program: Program) -> None:
    four = GroupAggregates(
        members=4, this_week={"decision_huddle": yes_no(3, 4)}, exposed=4, primary=yes_no(3, 4), series={THIS_WEEK: yes_no(3, 4)}
    )

    data = figures(make(program, group=four, comparison=GroupAggregates()))

    assert data["members"] == {"value": None, "suppressed": True}
    assert data["exposure"]["cohort"]["exposed"]["suppressed"] is True
    assert behavior(data, "decision_huddle")["this_week"]["suppressed"] is True
    assert data["primary"]["group"] is None and data["primary"]["difference"] is None
    assert data["series"][-1]["cohort"]["value"] is None


def test_primary_not_yet_due_has_no_figures_in_json(program: Program) -> None:
    primary = figures(make(program, week=W09))["primary"]

    assert primary["status"] == "not_due"
    assert primary["group"] is None and primary["difference"] is None
    assert primary["first_analysis"] == "2026-03-02"


def test_message_has_header_plan_sections_image_and_privacy_note(digest: Digest) -> None:
    message = digest_message(digest, b"\x89PNG fake")

    assert isinstance(message.blocks[0], Header)
    assert message.blocks[0].text == "Product leadership pilot — Pilot A, week 9 of 12 (2026-W10)"
    assert message.blocks[1] == Context("Analysis plan v1, frozen 2026-01-16")
    images = [b for b in message.blocks if isinstance(b, Image)]
    assert len(images) == 1 and images[0].data == b"\x89PNG fake"
    assert images[0].alt == chart_alt(digest)
    assert isinstance(message.blocks[-1], Context) and message.blocks[-1].text.startswith("Figures from fewer than 5 people")
    assert any(isinstance(b, Section) and b.text.startswith("Primary comparison") for b in message.blocks)
    assert message.text == "Pilot A: weekly digest for 2026-W10"


def test_message_without_a_chart_has_no_image(digest: Digest) -> None:
    assert not any(isinstance(b, Image) for b in digest_message(digest, None).blocks)


def test_chart_alt_text_describes_the_chart(digest: Digest) -> None:
    alt = chart_alt(digest)

    assert "Pilot A and Wave B" in alt and "weeks 1 to 9" in alt
    assert "fewer than 5 responses are left out" in alt
    assert alt.endswith("This week Pilot A: 70%.")


def test_message_shows_nothing_the_text_hides(program: Program) -> None:
    digest = make(program, group=pilot(this_week={"decision_huddle": yes_no(3, 4)}))

    plain = digest_message(digest, None).plain()

    assert "this week: fewer than 5 responses" in plain
    assert "n=4)" not in plain
    assert digest.plan == PLAN
