"""When AI feedback must wait for a coach, and how its review status reads to the learner.

AI feedback is advice, never a verdict: policy routes anything touching careers, health,
the law or protected characteristics, anything the model itself doubts, anything that could
not be read, and anything the learner asks a human to see, to a coach before it counts as
reviewed. The keyword lists favour recall on clear phrasings but stay word-bounded and
phrase-shaped, so everyday business talk ("raise the topic", "race condition", "fire drill")
does not bury coaches in false alarms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

ReviewStatus = Literal["not_reviewed", "awaiting_review", "approved", "edited", "rejected"]
Decision = Literal["approve", "edit", "reject"]
Source = Literal["ai", "rubric"]
Confidence = Literal["low", "medium", "high"]

ReasonCode = Literal[
    "promotion",
    "pay",
    "performance_rating",
    "dismissal",
    "health",
    "legal",
    "protected_characteristic",
    "low_confidence",
    "unparsed",
    "invented_quote",
    "coach_requested",
]

SOURCE_LABELS: dict[Source, str] = {"ai": "AI feedback", "rubric": "Rubric check, no AI"}
STATUS_TEXT: dict[ReviewStatus, str] = {
    "not_reviewed": "not reviewed",
    "awaiting_review": "awaiting coach review",
    "approved": "approved by a coach",
    "edited": "edited by a coach",
    "rejected": "rejected by a coach",
}
_SATURDAY = 5
_DECIDED: dict[Decision, ReviewStatus] = {"approve": "approved", "edit": "edited", "reject": "rejected"}


@dataclass(frozen=True)
class ReviewReason:
    """Why a coach must look: ``code`` is stable (stored, counted); ``text`` is for the coach."""

    code: ReasonCode
    text: str


class ReviewError(ValueError):
    """A review decision that cannot apply, worded for the coach who made it."""


def review_label(source: Source, status: ReviewStatus) -> str:
    """The grey line under every piece of feedback, e.g. "AI feedback — not reviewed"."""
    return f"{SOURCE_LABELS[source]} — {STATUS_TEXT[status]}"


def initial_status(reasons: Sequence[ReviewReason]) -> ReviewStatus:
    return "awaiting_review" if reasons else "not_reviewed"


def apply_decision(status: ReviewStatus, decision: Decision) -> ReviewStatus:
    """The status after a coach's decision; a decided item stays decided (one decision each)."""
    if status in ("approved", "edited", "rejected"):
        raise ReviewError(f"this feedback was already {STATUS_TEXT[status]}")
    return _DECIDED[decision]


# Flagged feedback that nobody decided reminds the cohort's coaches after this many working
# days, and the program's admins after as many more; the learner hears it is still pending.
REMIND_COACHES_AFTER = 2
REMIND_ADMINS_AFTER = 4
Escalation = Literal["coaches", "admins"]


def add_working_days(start: datetime, days: int) -> datetime:
    """``start`` moved on by ``days`` working days (Monday to Friday), at the same time of day;
    a start at a weekend counts from the Monday after it."""
    at = start
    while at.weekday() >= _SATURDAY:
        at = datetime.combine(at.date() + timedelta(days=1), time(0), at.tzinfo)
    left = days
    while left > 0:
        at += timedelta(days=1)
        if at.weekday() < _SATURDAY:
            left -= 1
    return at


def escalations_due(flagged_at: datetime, now: datetime) -> tuple[Escalation, ...]:
    """Who should have been reminded of an undecided flagged item by ``now`` (working days in UTC)."""
    due: list[Escalation] = []
    if now >= add_working_days(flagged_at, REMIND_COACHES_AFTER):
        due.append("coaches")
    if now >= add_working_days(flagged_at, REMIND_ADMINS_AFTER):
        due.append("admins")
    return tuple(due)


def _rx(*alternatives: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", flags)


# Object pronouns and people nouns: "fire him", "let the contractor go", "promote her".
_WHO = (
    r"(?:him|her|them|me|you|us|someone|somebody|anyone|people|staff|employees?|"
    r"(?:the|a|an|that|this|my|our|your|his|their)\s+"
    r"(?:guy|person|engineer|manager|employee|worker|member|lead|developer|designer|contractor|analyst|rep|intern|new\s+hire))"
)
_PERSON = (
    r"(?:employees?|engineers?|managers?|members?|persons?|people|reports?|developers?|staff|"
    r"workers?|candidates?|colleagues?|man|woman|guy)"
)

_TOPICS: dict[ReasonCode, tuple[str, tuple[re.Pattern[str], ...]]] = {
    "promotion": (
        "promotion",
        (
            _rx(
                r"(?:get|gets|got|getting|give|gives|giving|deserves?|ready\s+for|up\s+for|due\s+for|eligible\s+for|case\s+for"
                r"|going\s+for|denied|passed\s+over\s+for|in\s+line\s+for|for)"
                r"\s+(?:a\s+|the\s+|his\s+|her\s+|their\s+|my\s+|your\s+)?(?:promotion|promo)s?",
                r"(?:his|her|their|my|your|next)\s+promotion",
                r"promotion\s+(?:case|packet|committee|cycle|round|decision|criteria)",
                r"promot(?:e|es|ing)\s+" + _WHO,
                r"(?:get|gets|got|getting|was|were|be|been|being)\s+promoted",
                r"promoted\s+(?:him|her|them|me|to\s+(?:senior|lead|manager|director|staff|principal|head))",
                r"career\s+ladder",
                r"title\s+change",
            ),
        ),
    ),
    "pay": (
        "pay",
        (
            _rx(
                r"salar(?:y|ies)",
                r"wages?",
                r"(?<!added\s)(?<!as\sa\s)(?<!a\snice\s)bonus(?:es)?(?!\s+points?)",
                r"compensation",
                r"remuneration",
                r"payroll",
                r"pay\s*(?:rise|raise|cut|band|grade|gap|review|increase|freeze)s?",
                r"(?:salary|merit)\s+(?:rise|raise|increase)s?",
                # "raise" only as a noun about money: "a raise", "her annual raise", never "raise the topic"
                r"(?:a|the|his|her|their|my|your|our|annual|yearly)\s+raises?(?!\s+(?:the|a|an|this|that|it|concerns?|questions?|issues?|awareness|money|funds|prices?))",
                r"(?:under|over)paid",
                r"paid\s+(?:more|less)",
                r"pay\s+(?:him|her|them|me|us)\s+(?:more|less)",
                r"equity\s+(?:grants?|refresh(?:es)?|stake)",
                r"stock\s+options?",
                r"rsus?",
            ),
        ),
    ),
    "performance_rating": (
        "a performance rating",
        (
            _rx(
                r"performance\s+(?:reviews?|ratings?|rated|evaluations?|appraisals?|improvement\s+plans?|management|conversations?)",
                r"(?:his|her|their|your|my)\s+performance",
                r"underperformers?",
                r"underperforming\s+" + _PERSON,
                r"(?:he|she|they|him|her)\s+(?:is|are|was|were|has\s+been|have\s+been|keeps?)\s+underperforming",
                r"(?:low|poor|weak|bottom|under)[\s-]performers?",
                r"calibration\s+(?:meetings?|sessions?|committee)",
                r"(?:put|puts|putting)\s+(?:him|her|them|me|you)\s+on\s+(?:a\s+)?pip",
                r"on\s+a\s+pip",
            ),
            re.compile(r"\bPIPs?\b"),  # capitals only: lower-case "pip" is the Python installer
        ),
    ),
    "dismissal": (
        "dismissal",
        (
            _rx(
                r"fir(?:e|es|ed|ing)\s+" + _WHO + r"(?!\s+up)",
                r"(?:get|gets|got|getting|be|been|being|was|were)\s+fired",
                r"let\s+" + _WHO + r"\s+go(?!\s+(?:home|ahead|first|on|to|for|through|back|out|early))",
                r"(?:be|been|being|was|were|get|got)\s+let\s+go",
                r"lay(?:ing|s)?\s+" + _WHO + r"\s+off",
                r"lay(?:ing|s)?\s+off\s+(?:\d+|some|half|staff|people|employees|workers|contractors|the\s+(?:team|staff|contractors))",
                r"laid\s+off",
                r"lay-?offs?",
                r"redundanc(?:y|ies)",
                r"made\s+redundant",
                r"dismissals?",
                r"sacked",
                r"sack\s+" + _WHO,
                r"the\s+sack",
                r"severance",
                r"terminat(?:e|ed|ing)\s+" + _WHO,
                r"termination\s+(?:meeting|letter|package|of\s+employment)",
                r"managed?\s+(?:him|her|them)\s+out",
                r"managed\s+out",
                r"(?:cut|cuts|cutting|reduce|reducing)\s+(?:the\s+|our\s+|my\s+)?headcount",
                r"headcount\s+(?:cuts?|reductions?)",
                r"forced\s+to\s+resign",
            ),
        ),
    ),
    "health": (
        "health",
        (
            _rx(
                r"sick\s+(?:leave|note|notes|day|days|pay)",
                r"(?:off|on|called\s+in)\s+sick",
                r"illness(?:es)?",
                r"medical\s+(?:leave|conditions?|reasons|history|appointments?|records?|issues?|emergency|emergencies)",
                r"diagnos(?:is|es|ed)",
                r"mental\s+health",
                r"health\s+(?:issues?|problems?|conditions?|scare|reasons)",
                r"stress\s+leave",
                r"therap(?:y|ist)",
                r"depress(?:ion|ed)",
                r"anxiety\s+(?:attacks?|disorder)",
                r"panic\s+attacks?",
                r"cancer",
                r"surgery",
                r"hospital(?:ised|ized)?",
                r"chronic\s+(?:illness|pain|condition)",
                r"medication",
                r"doctor'?s?\s+note",
                r"addiction",
                r"rehab",
                r"long\s+covid",
                r"injur(?:y|ies|ed)",
            ),
        ),
    ),
    "legal": (
        "a legal matter",
        (
            _rx(
                r"lawsuits?",
                r"su(?:ed|ing)",
                r"sues?\s+(?:us|them|him|her|you|the\s+company)",
                r"lawyers?",
                r"attorneys?",
                r"litigat(?:e|ion|ing)",
                r"legal\s+(?:action|actions|claims?|case|proceedings|dispute|threat|advice|counsel|liability)",
                r"(?:take|takes|took|taken|taking|go|goes|going|went|end\s+up)\s+(?:(?:us|them|him|her|it|you|the\s+company)\s+)?to\s+court",
                r"in\s+court",
                r"tribunals?",
                r"grievances?",
                r"harass(?:ment|ed|ing)?",
                r"whistle-?blow(?:er|ers|ing)",
                r"wrongful\s+(?:dismissal|termination)",
                r"breach\s+of\s+contract",
                r"settlement\s+agreement",
                r"non-?competes?",
            ),
        ),
    ),
    "protected_characteristic": (
        "a protected characteristic",
        (
            _rx(
                r"(?:his|her|their|my|your)\s+(?:age|race|religion|ethnicity|gender|sexuality|nationality|disability|pregnancy)",
                r"too\s+(?:old|young)\s+(?:for|to)",
                r"(?:older|younger)\s+" + _PERSON,
                r"age(?:ism|ist)",
                r"age\s+discrimination",
                r"\d{2}[\s-]years?[\s-]old\s+" + _PERSON,
                r"near(?:ing)?\s+retirement",
                r"racial(?:ly)?",
                r"racis[mt]",
                r"ethnic(?:ity|ities)?",
                r"skin\s+colou?r",
                r"race\s+(?:and|or)\s+(?:ethnicity|gender|religion)",
                r"religio(?:n|ns|us)",
                r"ramadan",
                r"hijab",
                r"sabbath",
                r"prayer\s+(?:times?|breaks?|room)",
                r"church",
                r"mosque",
                r"synagogue",
                r"gender",
                r"sexual\s+orientation",
                r"gay",
                r"lesbian",
                r"transgender",
                r"non-?binary",
                r"pregnan(?:t|cy|cies)",
                r"maternity",
                r"paternity",
                r"parental\s+leave",
                r"marital\s+status",
                r"disab(?:led|ility|ilities)",
                r"neurodivergen(?:t|ce)",
                r"autis(?:m|tic)",
                r"adhd",
                r"dyslexi(?:a|c)",
                r"discriminat(?:ion|ory)",
                r"discriminat(?:e|es|ed|ing)\s+against",
                r"nationality",
                r"(?:visa|immigration)\s+status",
            ),
        ),
    ),
}

# A learner asking for a person: a bare "coach" turn, or request phrasing around a human.
# "the person who owns billing" or "talk to someone in finance" is pitch content, not a request.
_HUMAN = (
    r"(?:(?:a|an|my|the|our)\s+)?(?:(?:real|actual|live)\s+)?(?:human(?:\s+being)?|coach)"
    r"|(?:a|an)\s+(?:(?:real|actual|live)\s+)?person|someone\s+real"
)
_COACH_REQUEST = (
    re.compile(r"^\s*(?:coach|human)\s*(?:please)?\s*[.!?]*\s*$", re.IGNORECASE),
    _rx(
        r"(?:talk|speak|chat)\s+(?:to|with)\s+(?:" + _HUMAN + r")",
        r"(?:can|could|would|will)\s+(?:" + _HUMAN + r")\s+(?:please\s+)?(?:look|review|check|see|read)",
        r"(?:want|need|like|request|prefer)\s+(?:to\s+(?:ask|have|get)\s+)?(?:"
        + _HUMAN
        + r")\s+(?:review|to\s+(?:look|review|check|see|read))",
        r"(?:human|coach)\s+review",
        r"(?:send|forward|pass|escalate)\s+(?:this|it)\s+to\s+(?:" + _HUMAN + r")",
        r"ask\s+(?:a|my|the)\s+coach",
        r"not\s+(?:a|an)\s+(?:bot|ai)",
    ),
)


def _normalise(text: str) -> str:
    """Straight apostrophes and single spaces, so "let  him go" and "doctor’s note" match."""
    return " ".join(text.replace("’", "'").replace("‘", "'").split())


def sensitive_topics(text: str) -> list[tuple[ReasonCode, str]]:
    """Every sensitive topic the text touches, with the first phrase that shows it."""
    text = _normalise(text)
    found: list[tuple[ReasonCode, str]] = []
    for code, (_, patterns) in _TOPICS.items():
        for pattern in patterns:
            match = pattern.search(text)
            if match:
                found.append((code, match.group(0)))
                break
    return found


def asks_for_coach(text: str) -> bool:
    """True when the learner asks for a human (a coach, a person) to look at their rehearsal."""
    text = _normalise(text)
    return any(pattern.search(text) for pattern in _COACH_REQUEST)


def review_reasons(
    *,
    pitch: Iterable[str],
    ai_texts: Iterable[str] = (),
    confidence: Confidence | None = None,
    feedback_problem: str | None = None,
    invented_quotes: int = 0,
) -> list[ReviewReason]:
    """Every reason a coach must review this feedback; empty means "not reviewed" is enough.

    ``pitch`` is the leader's own turns; ``ai_texts`` is what the AI (or the rubric) said:
    stakeholder replies, suggestions, the next step. ``feedback_problem`` says why there is
    no usable feedback (unreadable, timed out), if so.
    """
    pitch = list(pitch)
    reasons: list[ReviewReason] = []
    seen: set[ReasonCode] = set()
    for where, texts in (("pitch", pitch), ("feedback", list(ai_texts))):
        for text in texts:
            for code, phrase in sensitive_topics(text):
                if code not in seen:
                    seen.add(code)
                    reasons.append(ReviewReason(code, f"The {where} touches {_TOPICS[code][0]} (\u201c{phrase}\u201d)."))
    if confidence == "low":
        reasons.append(ReviewReason("low_confidence", "The model reported low confidence in its feedback."))
    if feedback_problem:
        reasons.append(ReviewReason("unparsed", f"There is no usable AI feedback: {feedback_problem}."))
    if invented_quotes:
        reasons.append(
            ReviewReason("invented_quote", f"The model quoted words the leader never said ({invented_quotes} quote(s) removed).")
        )
    if any(asks_for_coach(text) for text in pitch):
        reasons.append(ReviewReason("coach_requested", "The leader asked for a coach to look."))
    return reasons


def review_button_value(review_id: int, decision: str) -> str:
    """What a review card's Approve / Edit / Reject button carries back."""
    return f"review|{review_id}|{decision}"


def is_edit_button(value: str) -> bool:
    """A coach's Edit: the adapters ask for the corrected advice as text before it is sent."""
    return value.startswith("review|") and value.endswith("|edit")
