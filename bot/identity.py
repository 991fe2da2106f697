"""Who is who: the program's people linked to their chat accounts by the bot itself.

Everyone is named in the program file by email. At `program load` each of them is looked up
on the configured platforms (Slack's users.lookupByEmail in every workspace, the Teams
rosters the bot can see); someone not found then (added to the workspace later, or never
messaged) is matched when they first write to the bot, by the email their platform profile
gives. Only a match on the program's email links an account, so only it grants a role.
Nobody types an id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from adapters.base import ChatPort, DeliveryError
from storage import accounts, audit, people
from storage.db import Database
from storage.models import Person

log = logging.getLogger(__name__)

ROLES = ("admin", "sponsor", "coach", "participant")  # the order the load report groups them in
ROLE_GROUPS = {"admin": "admins", "sponsor": "sponsors", "coach": "coaches", "participant": "participants"}
NOT_FOUND = {
    "slack": "no member of the Slack workspace(s) has this email",
    "teams": "not among the people who installed the Teams app, nor in a team that has it",
}


@dataclass(frozen=True)
class Unlinked:
    """Someone of the program the bot could not link, and why (for the program owner)."""

    email: str
    roles: tuple[str, ...]
    reason: str


class Identities:
    """Links people to accounts; one per process, with the configured chat platforms."""

    def __init__(self, db: Database, chats: Mapping[str, ChatPort]) -> None:
        self.db = db
        self.chats = chats

    async def link_program(self, now: datetime, progress: Callable[[int, int], None] | None = None) -> list[Unlinked]:
        """Look up everyone of the program not linked yet on the platforms they need; returns
        who is still unlinked: a participant not found on their own platform, anyone else
        found on none."""
        async with self.db.session() as session:
            todo = await accounts.needing_link(session, list(self.chats))
        unlinked = []
        for done, (person, roles, platforms) in enumerate(todo, start=1):
            reasons = [reason for platform in sorted(platforms) if (reason := await self._link_by_email(person, platform, now))]
            if reasons and await self._still_unlinked(person, roles):
                held = tuple(r for r in ROLES if r in roles)
                unlinked.append(Unlinked(person.email, held, "; ".join(reasons)))
            if progress is not None:
                progress(done, len(todo))
        return unlinked

    async def _link_by_email(self, person: Person, platform: str, now: datetime) -> str | None:
        """Link ``person`` on ``platform`` by their email; the reason when that fails."""
        chat = self.chats.get(platform)
        if chat is None:
            return f"{platform.capitalize()} is not configured here"
        try:
            user_id = await chat.resolve(person.email)
        except DeliveryError as exc:
            return f"{platform.capitalize()} look-up failed: {exc.reason}"
        if user_id is None:
            return NOT_FOUND.get(platform, f"nobody on {platform} has this email")
        async with self.db.session() as session:
            if await accounts.link(session, person.id, platform, user_id, now):
                audit.record(session, now, "program load", "account.linked", subject=person.email, platform=platform, how="email look-up")
        return None

    async def _still_unlinked(self, person: Person, roles: set[str]) -> bool:
        async with self.db.session() as session:
            linked = (await accounts.linked(session, [person.id])).get(person.id, {})
        if "participant" in roles and person.platform:
            return person.platform not in linked
        return not linked

    async def recognise(self, platform: str, user_id: str, now: datetime) -> Person | None:
        """The program person behind a request: their linked account, or, on first contact,
        the person whose program email the platform's profile of ``user_id`` gives (then
        linked). None for a stranger."""
        async with self.db.session() as session:
            known = await accounts.find(session, platform, user_id)
            if known is not None:
                await accounts.used(session, known[1], now)
                return known[0]
        chat = self.chats.get(platform)
        if chat is None:
            return None
        try:
            profile = await chat.profile(user_id)
        except DeliveryError as exc:
            log.warning("could not read the %s profile of %s: %s", platform, user_id, exc.reason)
            return None
        if profile is None or not profile.active or not profile.emails:
            return None
        async with self.db.session() as session:
            person = await people.by_emails(session, profile.emails)
            if person is None:
                return None
            await accounts.link(session, person.id, platform, user_id, now)
            audit.record(session, now, person.email, "account.linked", subject=person.email, platform=platform, how="first contact")
        log.info("linked %s on %s on first contact", person.email, platform)
        return person

    async def account_closed(self, platform: str, user_id: str, now: datetime, reason: str) -> str | None:
        """The platform says ``user_id`` is gone: their account is unlinked and they are paused
        (nothing is sent to them any more), audited; returns their email."""
        async with self.db.session() as session:
            person = await accounts.unlink(session, platform, user_id)
            if person is None:
                return None
            if person.paused_at is None:
                person.paused_at = now
            audit.record(session, now, person.email, "account.closed", subject=person.email, platform=platform, reason=reason)
        return person.email
