"""Rehearsals without an LLM: a scripted stakeholder and a deterministic rubric check.

This is the default when no LLM is configured, and what the demo and the tests run. The
stakeholder reads the scenario's objections in order, then its closing line. The rubric
check scores the leader's own words with plain rules (is there an ask, a number, evidence,
a dated next step, answers to the objections, short messages), quotes the sentence that
earned each score, and is labeled "Rubric check, no AI".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters.base import LlmError
from nudges.rehearsal import NO_PITCH, CriterionFeedback, Feedback, Rehearsal, Usage
from nudges.review import Source
from nudges.scenarios import CRITERION_NAMES, Criterion, Scenario


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


_DIRECT_ASK = _rx(
    r"can\s+we",
    r"could\s+we",
    r"can\s+you",
    r"could\s+you",
    r"will\s+you",
    r"would\s+you",
    r"i'?d\s+like\s+you\s+to",
    r"i\s+would\s+like\s+you\s+to",
    r"i\s+need\s+you\s+to",
    r"i\s+need\s+your",
    r"i'?m\s+asking",
    r"i\s+am\s+asking",
    r"i'?d\s+like\s+(?:to\s+ask|your)",
    r"(?:please\s+)?approve",
    r"agree\s+to",
    r"sign\s+off",
    r"sign-off",
    r"commit\s+to",
    r"are\s+you\s+willing",
    r"may\s+i",
    r"green\s*light",
)
_SOFT_ASK = _rx(
    r"let'?s",
    r"i\s+propose",
    r"we\s+should",
    r"i\s+think\s+we\s+should",
    r"it\s+would\s+be\s+(?:good|great|worth)",
    r"how\s+about",
    r"what\s+if\s+we",
    r"i\s+suggest",
    r"i\s+recommend",
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty|fifty|hundred|half|double|twice|triple)\b",
    re.IGNORECASE,
)
_OUTCOME = _rx(
    r"revenue",
    r"churn",
    r"retention",
    r"renewals?",
    r"customers?",
    r"costs?",
    r"savings?",
    r"sav(?:e|es|ing)\s+\w+",
    r"margins?",
    r"conversion",
    r"nps",
    r"csat",
    r"time\s+to\s+market",
    r"deliver(?:y|ies)?",
    r"ship(?:s|ping)?",
    r"releases?",
    r"deadlines?",
    r"on\s+time",
    r"throughput",
    r"cycle\s+time",
    r"lead\s+time",
    r"response\s+times?",
    r"sla",
    r"backlog",
    r"escalations?",
    r"incidents?",
    r"quality",
    r"roadmap",
    r"okrs?",
    r"goals?",
    r"targets?",
    r"growth",
    r"pipeline",
    r"profit",
    r"rework",
    r"wait(?:s|ing)?\s+(?:time|days)",
    r"accounts?",
    r"q[1-4]",
)
_EVIDENCE = _rx(
    r"last\s+(?:quarter|month|year|sprint|week|time)",
    r"this\s+(?:quarter|year)",
    r"we\s+(?:saw|measured|tracked|found|tried|ran|lost|spent|had)",
    r"data",
    r"numbers",
    r"survey",
    r"pilot",
    r"trial\s+(?:showed|run)",
    r"measured",
    r"tracked",
    r"according\s+to",
    r"report(?:ed)?",
    r"dashboard",
    r"benchmark",
    r"results?",
    r"since\s+(?:january|february|march|april|may|june|july|august|september|october|november|december|q[1-4]|last)",
    r"compared\s+(?:to|with)",
    r"up\s+from",
    r"down\s+from",
    r"(?:increased|decreased|dropped|grew|doubled|fell|rose)",
    r"for\s+example",
    r"for\s+instance",
    r"percent",
)
_PERCENT = re.compile(r"\d\s*%")  # outside \b...\b: "%" is not a word character
_WHEN = _rx(
    r"monday",
    r"tuesday",
    r"wednesday",
    r"thursday",
    r"friday",
    r"saturday",
    r"sunday",
    r"tomorrow",
    r"today",
    r"tonight",
    r"next\s+(?:week|month|sprint|quarter)",
    r"this\s+week",
    r"end\s+of\s+(?:the\s+)?(?:day|week|month|sprint|quarter)",
    r"eod",
    r"eow",
    r"in\s+(?:a|one|two|three|four|\d+)\s+(?:days?|weeks?|months?)",
    # "may" only next to a day number: alone it is usually the verb ("we may lose them").
    r"(?:january|february|march|april|june|july|august|september|october|november|december)",
    r"may\s+\d{1,2}",
    r"\d{1,2}\s+may",
    r"\d{1,2}(?:st|nd|rd|th)",
    r"\d{4}-\d{2}-\d{2}",
)
_ACTION = _rx(
    r"follow\s+up",
    r"follow-up",
    r"send",
    r"book",
    r"schedule",
    r"set\s+up",
    r"kick\s+off",
    r"invite",
    r"share",
    r"circulate",
    r"draft",
    r"check\s+in",
    r"check-in",
    r"review",
)
_ACKNOWLEDGE = _rx(
    r"fair\s+point",
    r"good\s+question",
    r"great\s+question",
    r"i\s+hear\s+you",
    r"i\s+understand",
    r"you'?re\s+right",
    r"that'?s\s+fair",
    r"i\s+get\s+(?:that|it)",
    r"the\s+concern",
    r"to\s+your\s+point",
    r"that'?s\s+why",
    r"which\s+is\s+why",
    r"instead\s+of",
    r"replaces?",
)
# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "to", "of", "in", "on", "at", "by", "for", "with", "from",
    "about", "as", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "this", "that", "these", "those",
    "it", "its", "i", "you", "he", "she", "we", "they", "me", "him", "her", "us", "them", "my", "your", "our", "their",
    "what", "why", "how", "who", "whom", "which", "when", "where", "there", "here", "not", "no", "yes", "can", "could",
    "would", "will", "should", "may", "might", "must", "have", "has", "had", "just", "really", "very", "more", "most",
    "one", "two", "some", "any", "all", "each", "than", "too", "also", "into", "over", "after", "before", "again", "only",
    "own", "same", "such", "other", "another",
})
# fmt: on


@dataclass(frozen=True)
class Scored:
    score: int
    quote: str | None
    suggestion: str


class RubricCoach:
    """The offline rehearsal port: scripted stakeholder replies and rule-based feedback."""

    source: Source = "rubric"

    async def reply(self, rehearsal: Rehearsal) -> tuple[str, Usage]:
        return scripted_reply(rehearsal), Usage()

    async def feedback(self, rehearsal: Rehearsal) -> tuple[Feedback | None, Usage, LlmError | None]:
        if not rehearsal.leader_turns:
            return None, Usage(), LlmError("empty", "no leader turns to review", NO_PITCH)
        return score_pitch(rehearsal), Usage(), None


def scripted_reply(rehearsal: Rehearsal) -> str:
    """The next objection in the scenario's order, then the closing line."""
    person = rehearsal.scenario.stakeholder
    said = len(rehearsal.stakeholder_turns)
    return person.objections[said] if said < len(person.objections) else person.closing


def score_pitch(rehearsal: Rehearsal) -> Feedback:
    """Deterministic rubric feedback on the leader's turns; the same pitch always scores the same."""
    turns = rehearsal.leader_turns
    scenario = rehearsal.scenario
    scorers: dict[Criterion, Callable[[], Scored]] = {
        "clear_ask": lambda: _clear_ask(turns),
        "business_outcome": lambda: _business_outcome(turns, scenario),
        "evidence": lambda: _evidence(turns),
        "objection_handling": lambda: _objection_handling(rehearsal),
        "next_step": lambda: _next_step(turns),
        "brevity": lambda: _brevity(turns),
    }
    items = [CriterionFeedback(criterion=c, **vars(scorers[c]())) for c in scenario.criteria]
    weakest = min(items, key=lambda item: item.score)  # ties: the first in rubric order
    if weakest.score == 5:
        next_step = "This pitch covers the whole rubric: give it for real, and notice which objection surprises you."
    else:
        next_step = f"Focus on \u201c{CRITERION_NAMES[weakest.criterion]}\u201d in your next rehearsal. {weakest.suggestion}"
    return Feedback(source="rubric", criteria=tuple(items), next_step=next_step, confidence="high")


def _sentences(turns: Sequence[str]) -> list[tuple[int, str]]:
    """(turn index, sentence) for every sentence the leader wrote, verbatim."""
    found = []
    for i, turn in enumerate(turns):
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", turn):
            if sentence.strip():
                found.append((i, sentence.strip()))
    return found


def _first(sentences: list[tuple[int, str]], test: Callable[[str], bool]) -> tuple[int, str] | None:
    return next((s for s in sentences if test(s[1])), None)


def _clear_ask(turns: Sequence[str]) -> Scored:
    sentences = _sentences(turns)
    direct = _first(sentences, lambda s: bool(_DIRECT_ASK.search(s)))
    if direct is not None:
        turn, sentence = direct
        if turn == 0 and _NUMBER.search(sentence):
            return Scored(5, sentence, "Keep opening with the ask; say it again in one line before you close.")
        if turn == 0:
            return Scored(4, sentence, "Make the ask specific: how many, how long, starting when.")
        return Scored(3, sentence, "Put the ask in your first message, so the stakeholder knows what you want before the detail.")
    soft = _first(sentences, lambda s: bool(_SOFT_ASK.search(s)))
    if soft is not None:
        return Scored(
            2,
            soft[1],
            "Turn the proposal into a direct question the stakeholder can say yes to: \u201cCan we ...?\u201d or \u201cWill you ...?\u201d",
        )
    return Scored(1, None, "Say plainly what you want the stakeholder to agree to, in your first message.")


def _business_outcome(turns: Sequence[str], scenario: Scenario) -> Scored:
    sentences = _sentences(turns)
    first = scenario.stakeholder.priorities[0].rstrip(".")
    priority = first[:1].lower() + first[1:]
    both = _first(sentences, lambda s: bool(_OUTCOME.search(s) and _NUMBER.search(s)))
    if both is not None:
        return Scored(5, both[1], f"Good link. Say what it means for {priority} in the stakeholder's words.")
    outcome = _first(sentences, lambda s: bool(_OUTCOME.search(s)))
    if outcome is not None:
        return Scored(3, outcome[1], "Put a number on the outcome: how much, how many, by when.")
    number = _first(sentences, lambda s: bool(_NUMBER.search(s)))
    if number is not None:
        return Scored(2, number[1], f"Say which business result the number moves, for example {priority}.")
    return Scored(1, None, f"Tie the ask to what the stakeholder cares about, for example {priority}.")


def _evidence(turns: Sequence[str]) -> Scored:
    sentences = _sentences(turns)
    marked = [(i, s) for i, s in sentences if _evidenced(s)]
    with_number = [(i, s) for i, s in marked if _NUMBER.search(s)]
    if len(marked) >= 2 and with_number:
        return Scored(5, with_number[0][1], "Strong evidence. Keep it to one or two facts the stakeholder can check.")
    if with_number:
        return Scored(4, with_number[0][1], "Add a second, independent fact, such as a past result or a comparison.")
    if marked:
        return Scored(3, marked[0][1], "Put a number on the evidence: what you measured, and when.")
    number = _first(sentences, lambda s: bool(_NUMBER.search(s)))
    if number is not None:
        return Scored(2, number[1], "Say where the number comes from: last quarter's data, a pilot, a report.")
    return Scored(1, None, "Back the claim with one fact: something you measured or saw happen.")


def _content_words(text: str) -> set[str]:
    # Five-letter prefixes stand in for stems: "meetings" meets "meeting", "owner" meets "owns".
    return {w[:5] for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def _evidenced(text: str) -> bool:
    return bool(_EVIDENCE.search(text) or _PERCENT.search(text))


def _fact(text: str) -> bool:
    return bool(_evidenced(text) and _NUMBER.search(text))


def _objection_handling(rehearsal: Rehearsal) -> Scored:
    answers: list[tuple[str, str]] = []  # (objection, the leader's next turn)
    for before, after in itertools.pairwise(rehearsal.turns):
        if before.speaker == "stakeholder" and after.speaker == "leader":
            answers.append((before.text, after.text))
    if not answers:
        return Scored(1, None, "Stay for the pushback: answer at least one objection before you type done.")
    # An answer engages when it picks up the objection's words, acknowledges it, or brings a fact.
    addressed = [(obj, ans) for obj, ans in answers if _content_words(obj) & _content_words(ans) or _ACKNOWLEDGE.search(ans) or _fact(ans)]
    best = max(answers, key=lambda pair: len(_content_words(pair[0]) & _content_words(pair[1])))[1]
    quote = _sentences([best])[0][1]
    share = len(addressed) / len(answers)
    if share == 1 and any(_fact(ans) for _, ans in addressed):
        return Scored(5, quote, "You met each objection head on with a fact. Keep answers this direct.")
    if share == 1:
        return Scored(4, quote, "Back your answer to the objection with a number or an example.")
    if share >= 0.5:
        return Scored(3, quote, "Answer every objection before moving on; name the concern, then your answer.")
    if addressed:
        return Scored(2, quote, "Most objections went unanswered. Repeat the concern in your words, then answer it.")
    return Scored(1, quote, "Answer the objection that was raised instead of restating the pitch.")


def _next_step(turns: Sequence[str]) -> Scored:
    sentences = _sentences(turns)
    both = _first(sentences, lambda s: bool(_ACTION.search(s) and _WHEN.search(s)))
    if both is not None:
        return Scored(5, both[1], "Clear next step. Confirm who owns it before you leave the room.")
    when = _first(sentences, lambda s: bool(_WHEN.search(s)))
    action = _first(sentences, lambda s: bool(_ACTION.search(s)))
    if when is not None and action is not None:
        return Scored(4, action[1], "Put the action and the date in one sentence: \u201cI'll send X by Thursday.\u201d")
    if when is not None:
        return Scored(3, when[1], "Say what happens at that date and who does it.")
    if action is not None:
        return Scored(2, action[1], "Add a date to the next step, such as \u201cby Friday\u201d or \u201cnext Tuesday\u201d.")
    return Scored(1, None, "End with a concrete next step: who does what, by when.")


def _brevity(turns: Sequence[str]) -> Scored:
    counts = [len(turn.split()) for turn in turns]
    longest = max(range(len(turns)), key=lambda i: counts[i])
    quote = _sentences([turns[longest]])[0][1]
    if sum(counts) < 12:
        return Scored(2, quote, "Too short to carry an ask, a reason and a next step; use two or three sentences.")
    score = next((score for limit, score in ((80, 5), (120, 4), (170, 3), (250, 2)) if counts[longest] <= limit), 1)
    if score == 5:
        return Scored(5, quote, f"Short and plain (longest message {counts[longest]} words). Keep it that way.")
    return Scored(score, quote, f"Your longest message ran to {counts[longest]} words; aim for under 80, one idea per message.")
