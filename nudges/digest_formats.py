"""A digest as plain text, as JSON figures (CLI, stored record) and as a chat message with its chart.

All read the already-suppressed Digest, so a figure hidden there is hidden here: in JSON a
suppressed figure is ``{"value": null, ..., "suppressed": true}`` with no count beside it.
A digest of a week still open has counts only, and says when its figures will come.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nudges.digest import BASELINE_WEEKS, BehaviorFigures, Digest, Estimate, OpenWeek, Participation
from nudges.messages import Context, Header, Image, Message, Section

# 2: a week still open has "closed": false and no behavior figures; "open_weeks" added.
FORMAT_VERSION = 2


# --- text -----------------------------------------------------------------------------------


def _percent_points(d: float) -> str:
    return f"{d * 100:+.0f} points"


def figure_text(est: Estimate, kind: str, min_group_size: int) -> str:
    """'62% (95% CI 48%–75%, n=40)', or why there is no figure."""
    if est.withheld:
        return f"not shown apart from the primary comparison (it would single out fewer than {min_group_size} people)"
    if not est.shown:
        return f"fewer than {min_group_size} responses" if est.n else "no responses"
    if kind == "yes_partly_no":
        return f"{est.value:.0%} (95% CI {est.low:.0%}–{est.high:.0%}, n={est.n})"
    return f"{est.value:.1f} (95% CI {est.low:.1f}–{est.high:.1f}, n={est.n})"


def difference_text(est: Estimate, kind: str) -> str:
    """'+21 points (95% CI +3 to +37)' for rates, '+0.4 (95% CI -0.1 to +0.9)' for means."""
    assert est.value is not None and est.low is not None and est.high is not None
    if kind == "yes_partly_no":
        return f"{_percent_points(est.value)} (95% CI {est.low * 100:+.0f} to {est.high * 100:+.0f})"
    return f"{est.value:+.1f} (95% CI {est.low:+.1f} to {est.high:+.1f})"


def _answered_text(p: Participation | None, min_group_size: int) -> str:
    if p is None:
        return f"fewer than {min_group_size} managers had a checklist this week"
    if p.delivered == 0:
        return "no checklists were delivered this week"
    return f"{p.answered} of {p.delivered} managers answered ({p.rate:.0%})"


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def participation_text(digest: Digest) -> str:
    p = digest.participation
    text = _answered_text(p, digest.min_group_size)
    if p is None or p.delivered == 0:
        return text
    earlier = [f"{q.rate:.0%}" if q is not None and q.rate is not None else "–" for _w, q in digest.trend]
    if len(earlier) > 1:
        text += f"; last {len(earlier)} weeks: {', '.join(earlier)}"
    return text


def closing_text(digest: Digest) -> str:
    """Whether the week's figures are final, or when they will be computed."""
    if digest.closed:
        return f"Week closed on {_when(digest.closes_at)}: these figures are final and every later digest of {digest.week} repeats them."
    return (
        f"This week is still open: its behavior figures are computed once, when it closes on {_when(digest.closes_at)}, "
        "and never change after. Until then only counts are shown."
    )


def open_week_text(week: OpenWeek, min_group_size: int) -> str:
    """'2026-W11 (week 10), still open: 20 of 40 managers answered so far (50%); figures when it closes on ...'."""
    answered = _answered_text(week.participation, min_group_size)
    return (
        f"{week.week} (week {week.week_number}), still open: {answered} so far; its figures come when it closes on {_when(week.closes_at)}."
    )


def _count_text(value: int | None, min_group_size: int) -> str:
    return str(value) if value is not None else f"fewer than {min_group_size} people"


def primary_lines(digest: Digest) -> list[str]:
    """The pre-registered comparison, or why it is not shown; empty without a plan."""
    p = digest.primary
    if p is None:
        return ["No analysis plan is registered for this cohort, so there is no primary comparison."]
    k = digest.min_group_size
    lines = [f"Primary comparison (pre-registered, {p.method.replace('_', ' ')}): {p.question}"]
    if digest.members is None:
        exposed = f"fewer than {k} members"
    else:
        exposed = f"{_count_text(digest.exposed, k)} of {digest.members} members have answered at least {p.min_exposure_weeks} weeks"
    if p.method != "baseline" and digest.comparison_name:
        if digest.comparison_members is None:
            exposed += f" ({digest.comparison_name}: fewer than {k} members)"
        else:
            exposed += f" ({digest.comparison_name}: {_count_text(digest.comparison_exposed, k)} of {digest.comparison_members})"
    lines.append(f"  exposure: {exposed}")
    if p.status != "shown":
        lines.append(f"  {p.note}")
        return lines
    lines.append(f"  {digest.cohort_name}: {figure_text(p.group, p.kind, k)}")
    lines.append(f"  {p.reference_label}: {figure_text(p.reference, p.kind, k)}")
    method = "Newcombe hybrid score" if p.kind == "yes_partly_no" else "Welch"
    lines.append(f"  difference: {difference_text(p.difference, p.kind)}; {method}")
    lines.append(f"  {p.note}")
    return lines


def behavior_lines(digest: Digest, b: BehaviorFigures) -> list[str]:
    k = digest.min_group_size
    lines = [
        b.question,
        f"  this week: {figure_text(b.this_week, b.kind, k)}",
        f"  first {BASELINE_WEEKS} weeks: {figure_text(b.baseline, b.kind, k)}",
    ]
    if b.change is not None:
        change = _percent_points(b.change) if b.kind == "yes_partly_no" else f"{b.change:+.1f}"
        lines.append(f"  change since the first weeks: {change}")
    if b.comparison is not None and digest.comparison_name:
        lines.append(f"  {digest.comparison_name} this week: {figure_text(b.comparison, b.kind, k)}")
    return lines


def activity_text(digest: Digest) -> str:
    hidden = f"not shown (fewer than {digest.min_group_size} people)"
    rehearsals = hidden if digest.rehearsals is None else str(digest.rehearsals)
    awaiting = hidden if digest.awaiting_review is None else str(digest.awaiting_review)
    return f"Rehearsals this week: {rehearsals}. AI feedback awaiting coach review: {awaiting}."


def privacy_text(min_group_size: int) -> str:
    return f"Figures from fewer than {min_group_size} people are not shown. Notes and individual answers never appear here."


def headline(digest: Digest) -> str:
    return f"{digest.program} — {digest.cohort_name}, week {digest.week_number} of {digest.weeks} ({digest.week})"


def digest_text(digest: Digest) -> str:
    """The digest as plain text for a terminal or a fallback notification."""
    lines = [headline(digest)]
    if digest.plan is not None:
        lines.append(f"Analysis {digest.plan.label()}")
    lines.append(f"Participation: {participation_text(digest)}")
    lines += [f"Also: {open_week_text(w, digest.min_group_size)}" for w in digest.open_weeks]
    lines.append(closing_text(digest))
    if digest.closed:
        lines += ["", *primary_lines(digest), ""]
        for b in digest.behaviors:
            lines += behavior_lines(digest, b)
    lines += ["", activity_text(digest), privacy_text(digest.min_group_size)]
    return "\n".join(lines)


# --- JSON -----------------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def estimate_json(est: Estimate) -> dict[str, Any]:
    if est.suppressed:
        return {"value": None, "low": None, "high": None, "n": None, "suppressed": True}
    return {"value": _num(est.value), "low": _num(est.low), "high": _num(est.high), "n": est.n, "suppressed": False}


def _count(value: int | None) -> dict[str, Any]:
    return {"value": value, "suppressed": value is None}


def _participation(week: str, p: Participation | None) -> dict[str, Any]:
    if p is None:
        return {"week": week, "delivered": None, "answered": None, "rate": None, "suppressed": True}
    return {"week": week, "delivered": p.delivered, "answered": p.answered, "rate": _num(p.rate), "suppressed": False}


def figures(digest: Digest) -> dict[str, Any]:
    """Every figure of the digest as JSON-ready data; the same figures as the text."""
    p = digest.primary
    return {
        "format": FORMAT_VERSION,
        "program": digest.program,
        "cohort": {"key": digest.cohort_key, "name": digest.cohort_name},
        "week": str(digest.week),
        "week_number": digest.week_number,
        "weeks": digest.weeks,
        "min_group_size": digest.min_group_size,
        "baseline_weeks": BASELINE_WEEKS,
        "plan": None
        if digest.plan is None
        else {
            "version": digest.plan.version,
            "content_hash": digest.plan.content_hash,
            "changed": list(digest.plan.changed),
            "frozen_at": digest.plan.frozen_at.isoformat(),
            "label": digest.plan.label(),
        },
        "comparison": None if digest.comparison_key is None else {"key": digest.comparison_key, "name": digest.comparison_name},
        "closed": digest.closed,
        "closes_at": digest.closes_at.isoformat(),
        "participation": _participation(str(digest.week), digest.participation),
        "participation_trend": [_participation(str(w), q) for w, q in digest.trend],
        "open_weeks": [
            {**_participation(str(w.week), w.participation), "week_number": w.week_number, "closes_at": w.closes_at.isoformat()}
            for w in digest.open_weeks
        ],
        "members": _count(digest.members),
        "exposure": None
        if p is None
        else {
            "min_weeks": p.min_exposure_weeks,
            "cohort": {"exposed": _count(digest.exposed), "members": _count(digest.members)},
            "comparison": None
            if digest.comparison_key is None
            else {
                "exposed": _count(digest.comparison_exposed),
                "members": _count(digest.comparison_members),
            },
        },
        "primary": None
        if p is None
        else {
            "behavior": p.behavior,
            "answer": p.kind,
            "method": p.method,
            "first_analysis": p.first_analysis.isoformat(),
            "status": p.status,
            "note": p.note,
            "reference": p.reference_label,
            "group": estimate_json(p.group) if p.status == "shown" else None,
            "reference_figure": estimate_json(p.reference) if p.status == "shown" else None,
            "difference": None
            if p.status != "shown"
            else {
                **{k: v for k, v in estimate_json(p.difference).items() if k != "n"},
                "interval": "newcombe_hybrid_score" if p.kind == "yes_partly_no" else "welch",
            },
        },
        "behaviors": [
            {
                "key": b.key,
                "question": b.question,
                "answer": b.kind,
                "this_week": estimate_json(b.this_week),
                "baseline": estimate_json(b.baseline),
                "change": _num(b.change),
                "comparison": None if b.comparison is None else estimate_json(b.comparison),
            }
            for b in digest.behaviors
        ],
        "rehearsals": _count(digest.rehearsals),
        "awaiting_review": _count(digest.awaiting_review),
        "series": [
            {
                "week": str(s.week),
                "week_number": s.week_number,
                "cohort": estimate_json(s.cohort),
                "comparison": None if s.comparison is None else estimate_json(s.comparison),
            }
            for s in digest.series
        ],
    }


def chart_alt(digest: Digest) -> str:
    """What the chart shows, in words, for screen readers and platforms that drop images."""
    p = digest.primary
    if not digest.closed:
        return "No chart: the week is still open, and its figures are computed when it closes."
    if p is None or not digest.series:
        return "No chart: this cohort has no analysis plan naming a primary behavior."
    who = digest.cohort_name + (f" and {digest.comparison_name}" if digest.comparison_name else "")
    last = digest.series[-1]
    now = ""
    if last.cohort.shown:
        value = f"{last.cohort.value:.0%}" if p.kind == "yes_partly_no" else f"{last.cohort.value:.1f}"
        now = f" This week {digest.cohort_name}: {value}."
    return (
        f'Weekly {"rate" if p.kind == "yes_partly_no" else "mean"} for "{p.question}", {who}, '
        f"weeks 1 to {last.week_number}, with 95% interval bands; weeks with fewer than "
        f"{digest.min_group_size} responses are left out.{now}"
    )


def digest_message(digest: Digest, chart: bytes | None = None) -> Message:
    """The digest as a neutral chat message; ``chart`` (PNG) becomes an image block."""
    blocks: list[Header | Section | Image | Context] = [Header(headline(digest))]
    if digest.plan is not None:
        blocks.append(Context(f"Analysis {digest.plan.label()}"))
    blocks.append(Section(f"Participation: {participation_text(digest)}"))
    blocks += [Section(f"Also: {open_week_text(w, digest.min_group_size)}") for w in digest.open_weeks]
    blocks.append(Context(closing_text(digest)))
    if digest.closed:
        blocks.append(Section("\n".join(primary_lines(digest))))
    if chart is not None:
        blocks.append(Image(alt=chart_alt(digest), data=chart))
    for b in digest.behaviors:
        blocks.append(Section("\n".join(behavior_lines(digest, b))))
    blocks.append(Context(activity_text(digest)))
    blocks.append(Context(privacy_text(digest.min_group_size)))
    return Message(text=f"{digest.cohort_name}: weekly digest for {digest.week}", blocks=tuple(blocks))
