"""The analysis-plan lock: what a cohort's pre-registered plan is, and whether it changed.

A plan is only worth something if it cannot be quietly changed after the figures are
seen, so the first digest freezes it and every later change becomes a numbered version
that the digest names. This module decides; storage.plans keeps the versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nudges.program import Cohort, Program

# Snapshot field -> how a sponsor reads it in "plan v2, changed 2026-02-10: primary behavior".
FIELDS: dict[str, str] = {
    "primary_behavior": "primary behavior",
    "method": "method",
    "min_exposure_weeks": "minimum exposure",
    "first_analysis": "first analysis date",
    "comparison": "comparison cohort",
    "checklist": "checklist questions",
}


def snapshot(program: Program, cohort: Cohort) -> dict[str, Any]:
    """The parts of a cohort's set-up that define its metrics, as plain JSON data.

    The comparison cohort is included because swapping it changes the analysis as much as
    changing the method. Checklist questions are sorted by key: reordering the checklist
    does not change what is measured, rewording a question does.
    """
    plan = cohort.plan
    return {
        "primary_behavior": plan.primary_behavior if plan else None,
        "method": plan.method if plan else None,
        "min_exposure_weeks": plan.min_exposure_weeks if plan else None,
        "first_analysis": plan.first_analysis.isoformat() if plan else None,
        "comparison": cohort.comparison,
        "checklist": [
            {"key": key, "question": program.behavior(key).question, "answer": program.behavior(key).answer}
            for key in sorted(cohort.checklist)
        ],
    }


def content_hash(plan: Mapping[str, Any]) -> str:
    """SHA-256 of the snapshot in canonical JSON, independent of key order and formatting."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Snapshot fields whose value differs, in the order of FIELDS."""
    return [name for name in FIELDS if old.get(name) != new.get(name)]


@dataclass(frozen=True)
class PlanVersion:
    """One frozen version of a cohort's plan."""

    version: int
    content_hash: str
    plan: Mapping[str, Any]
    changed: tuple[str, ...]
    frozen_at: datetime

    def label(self) -> str:
        """'plan v1, frozen 2026-01-16' or 'plan v2, changed 2026-02-10: primary behavior'."""
        day = self.frozen_at.date().isoformat()
        if self.version == 1:
            return f"plan v1, frozen {day}"
        what = ", ".join(FIELDS.get(name, name) for name in self.changed) or "no field"
        return f"plan v{self.version}, changed {day}: {what}"


@dataclass(frozen=True)
class NewVersion:
    """A version to store: the first freeze, or a change against the latest version."""

    version: int
    content_hash: str
    plan: dict[str, Any]
    changed: list[str]


def next_version(history: Sequence[PlanVersion], current: dict[str, Any]) -> NewVersion | None:
    """What to store for the plan in force, or None when it equals the latest version.

    Comparing with the latest version only (not all of them) means that changing a field
    back is itself a change, with its own version: the history stays a true record.
    """
    digest = content_hash(current)
    if not history:
        return NewVersion(1, digest, current, [])
    latest = max(history, key=lambda v: v.version)
    if latest.content_hash == digest:
        return None
    return NewVersion(latest.version + 1, digest, current, changed_fields(latest.plan, current))
