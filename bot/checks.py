"""What `reinforce doctor` reports: one check's outcome, and the program's people and channels each platform's checks look at."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Literal

from nudges.program import Program
from storage import accounts
from storage.db import Database

__all__ = ["Check", "ProgramChannel", "Status", "channels_of", "listing", "not_configured", "ok", "problem", "unlinked_people"]

Status = Literal["ok", "problem", "not_configured"]


@dataclass(frozen=True)
class Check:
    """One thing checked: ``detail`` says what was found, ``fix`` what to do about a problem."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status.replace('_', ' ')} {self.name}: {self.detail}" + (f" -> fix: {self.fix}" if self.fix else "")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def problem(name: str, detail: str, fix: str) -> Check:
    return Check(name, "problem", detail, fix)


def not_configured(name: str, detail: str) -> Check:
    return Check(name, "not_configured", detail)


def listing(items: list[str], limit: int = 10) -> str:
    """``items`` joined, the first ``limit`` of them: a line an operator can still read."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass(frozen=True)
class ProgramChannel:
    """A channel the program posts in: a cohort's sponsor channel (digests) or review channel."""

    platform: str
    id: str
    uses: tuple[str, ...]  # "sponsor channel of pilot-a", ...


def channels_of(program: Program, platform: str) -> list[ProgramChannel]:
    """Every channel of ``platform`` the program names, once each, with what it is for."""
    found: dict[str, list[str]] = {}
    for cohort in program.cohorts:
        for role, channel in (("sponsor", cohort.sponsor_channel), ("review", cohort.review_channel)):
            if channel is not None and channel.platform == platform:
                found.setdefault(channel.id, []).append(f"{role} channel of {cohort.key}")
    return [ProgramChannel(platform, channel, tuple(uses)) for channel, uses in found.items()]


async def unlinked_people(db: Database, configured: Collection[str]) -> dict[str, list[str]]:
    """platform -> "email (roles)" of the people who get nothing there because no chat account
    is linked: a participant not linked on their own platform (listed under it, configured or
    not), anyone else linked on none of the ``configured`` platforms (listed under the first)."""
    order = sorted(configured)
    async with db.session() as session:
        rows = await accounts.needing_link(session, order)
    found: dict[str, list[str]] = {}
    for person, roles, missing in rows:
        label = f"{person.email} ({', '.join(sorted(roles))})"
        if "participant" in roles and person.platform and person.platform in missing:
            found.setdefault(person.platform, []).append(label)
        elif roles - {"participant"} and order and set(order) <= missing:
            found.setdefault(order[0], []).append(label)
    return found
