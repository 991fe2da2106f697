"""Tests for nudges/review.py: what sends feedback to a coach, and how its status reads."""

from __future__ import annotations

import pytest

from nudges.review import (
    ReviewError,
    apply_decision,
    asks_for_coach,
    initial_status,
    review_label,
    review_reasons,
    sensitive_topics,
)


def codes(text: str) -> set[str]:
    return {code for code, _ in sensitive_topics(text)}


# --- each sensitive topic is flagged ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("She is up for promotion this cycle.", "promotion"),
        ("Can we promote her to senior engineer?", "promotion"),
        ("He got promoted last year.", "promotion"),
        ("I think he deserves a raise.", "pay"),
        ("Her salary is below the band.", "pay"),
        ("The bonuses this year are tiny.", "pay"),
        ("We could offer a pay rise instead.", "pay"),
        ("He is underpaid compared to the team.", "pay"),
        ("His performance review is next week.", "performance_rating"),
        ("We should put him on a PIP.", "performance_rating"),
        ("She is one of our low performers.", "performance_rating"),
        ("We should fire him.", "dismissal"),
        ("We had to let the contractor go.", "dismissal"),
        ("Three people were laid off in May.", "dismissal"),
        ("Are there layoffs coming?", "dismissal"),
        ("Redundancies are on the table.", "dismissal"),
        ("He got fired after the incident.", "dismissal"),
        ("She has been on sick leave since March.", "health"),
        ("He mentioned his mental health.", "health"),
        ("She had surgery last month.", "health"),
        ("They threatened a lawsuit.", "legal"),
        ("The customer might sue us.", "legal"),
        ("HR got a harassment complaint.", "legal"),
        ("She filed a grievance.", "legal"),
        ("She is pregnant and will be on maternity leave.", "protected_characteristic"),
        ("His religion keeps him from Friday evenings.", "protected_characteristic"),
        ("He is too old for this team, honestly.", "protected_characteristic"),
        ("We need to talk about her age.", "protected_characteristic"),
        ("That comment about his race was out of line.", "protected_characteristic"),
        ("He has a disability.", "protected_characteristic"),
        ("She asked about parental leave.", "protected_characteristic"),
    ],
)
def test_sensitive_topic_is_flagged(text: str, code: str) -> None:
    assert code in codes(text)


# --- everyday business talk is not --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I want to raise the topic of decision huddles.",
        "Can I raise a concern about the roadmap?",
        "We run a fire drill every quarter.",
        "Let's fire off an email to the leads.",
        "There is a race condition in the queue.",
        "It's a race to market with the competitor.",
        "The median ticket age is 9 days.",
        "We have a 10-year-old codebase.",
        "I'd like to promote this practice across teams.",
        "As a bonus, the huddle replaces the Thursday sync.",
        "We saw performance issues in the API last quarter.",
        "I'm sick of reopened decisions.",
        "The ball is in your court.",
        "Let them go ahead with the pilot.",
        "pip install the client first.",
        "Let's pay attention to the renewals.",
        "I need two more people on the support team for one quarter.",
        "Headcount is frozen this year.",
    ],
)
def test_everyday_business_talk_is_not_flagged(text: str) -> None:
    assert sensitive_topics(text) == []


def test_neutral_pitch_and_feedback_get_no_reasons() -> None:
    pitch = [
        "Dana, can we trial a 15-minute weekly decision huddle for six weeks?",
        "Two roadmap decisions were reopened last month; that cost us 8 days of rework.",
        "I'll send the invite for Tuesday and we review the trial on March 30.",
    ]
    feedback = ["Name the Q3 milestone the huddle protects.", "Open with the ask, then the evidence."]

    assert review_reasons(pitch=pitch, ai_texts=feedback, confidence="high") == []


def test_matching_ignores_line_breaks_and_curly_apostrophes() -> None:
    assert "dismissal" in codes("we need to let\nhim   go")
    assert "health" in codes("she brought a doctor’s note")


# --- reasons ------------------------------------------------------------------------------


def test_sensitive_feedback_is_flagged_and_says_where() -> None:
    reasons = review_reasons(pitch=["Can we trial a huddle?"], ai_texts=["Mention that her promotion depends on it."], confidence="high")

    assert [r.code for r in reasons] == ["promotion"]
    assert reasons[0].text.startswith("The feedback touches promotion")


def test_one_reason_per_topic_even_when_mentioned_often() -> None:
    reasons = review_reasons(pitch=["His salary is low.", "A raise would fix it."], ai_texts=["Don't discuss his bonus."])

    assert [r.code for r in reasons] == ["pay"]
    assert "The pitch touches pay" in reasons[0].text


def test_low_confidence_is_flagged_medium_is_not() -> None:
    assert [r.code for r in review_reasons(pitch=["Can we?"], confidence="low")] == ["low_confidence"]
    assert review_reasons(pitch=["Can we?"], confidence="medium") == []


def test_unusable_feedback_is_flagged_with_its_problem() -> None:
    reasons = review_reasons(pitch=["Can we?"], feedback_problem="the answer holds no JSON object")

    assert [r.code for r in reasons] == ["unparsed"]
    assert "the answer holds no JSON object" in reasons[0].text


def test_invented_quotes_are_flagged() -> None:
    assert [r.code for r in review_reasons(pitch=["Can we?"], invented_quotes=2)] == ["invented_quote"]


@pytest.mark.parametrize(
    "text",
    [
        "coach",
        "  Coach! ",
        "human please",
        "Can a human look at this?",
        "I want to talk to a person.",
        "Could my coach review this?",
        "I'd like a coach to look at my pitch",
        "please send this to a coach",
        "are you a bot? I want to speak with a real human",
    ],
)
def test_learner_asking_for_a_coach_is_flagged(text: str) -> None:
    assert asks_for_coach(text)
    assert [r.code for r in review_reasons(pitch=["Can we trial it?", text])] == ["coach_requested"]


@pytest.mark.parametrize(
    "text",
    [
        "I'll coach my leads through the first huddle.",
        "I will talk to the person who owns billing.",
        "Let's talk to someone in finance.",
        "Our coaching budget is fine.",
    ],
)
def test_pitch_content_about_coaching_or_people_is_not_a_coach_request(text: str) -> None:
    assert not asks_for_coach(text)


def test_reasons_come_in_a_stable_order() -> None:
    reasons = review_reasons(
        pitch=["coach", "He deserves a raise."], ai_texts=["Talk about the lawsuit."], confidence="low", invented_quotes=1
    )

    assert [r.code for r in reasons] == ["pay", "legal", "low_confidence", "invented_quote", "coach_requested"]


# --- status and labels --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("not_reviewed", "AI feedback — not reviewed"),
        ("awaiting_review", "AI feedback — awaiting coach review"),
        ("approved", "AI feedback — approved by a coach"),
        ("edited", "AI feedback — edited by a coach"),
        ("rejected", "AI feedback — rejected by a coach"),
    ],
)
def test_ai_feedback_label_shows_the_review_status(status: str, label: str) -> None:
    assert review_label("ai", status) == label  # type: ignore[arg-type]


def test_offline_feedback_is_labeled_as_no_ai() -> None:
    assert review_label("rubric", "not_reviewed") == "Rubric check, no AI — not reviewed"


def test_flagged_feedback_starts_awaiting_review_and_unflagged_not_reviewed() -> None:
    assert initial_status(review_reasons(pitch=["coach"])) == "awaiting_review"
    assert initial_status([]) == "not_reviewed"


def test_coach_decisions_set_the_status_once() -> None:
    assert apply_decision("awaiting_review", "approve") == "approved"
    assert apply_decision("awaiting_review", "edit") == "edited"
    assert apply_decision("not_reviewed", "reject") == "rejected"
    with pytest.raises(ReviewError, match="already approved by a coach"):
        apply_decision("approved", "reject")
