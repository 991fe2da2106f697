"""Simulated managers for `reinforce demo`: they read what the console chat shows them and
click its buttons, some sooner, some later, some never, like people do."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from adapters.console import ConsoleChat
from bot.inbound import InboundHandler
from nudges.messages import Section

PILOT, COMPARISON = "pilot-a", "wave-b"
# A starting propensity per behavior, and a weekly gain that is larger in the pilot (which
# gets the training) than in the comparison wave.
WEEKLY_GAIN = {PILOT: 0.06, COMPARISON: 0.01}
CONSENT_RATE = 0.95
ANSWER_RATE = 0.8  # answer the checklist at all (the reminder wins back half of the rest)
CHANGE_OF_MIND = 0.05
DOUBLE_CLICK = 0.05  # a platform delivering the same click twice
NUDGE_FEEDBACK = 0.5


@dataclass(order=True)
class Pending:
    at: datetime
    message_id: str = field(compare=False)
    email: str = field(compare=False)


@dataclass
class Managers:
    """The simulated managers and what they will do next."""

    chat: ConsoleChat
    inbound: InboundHandler
    cohort_of: dict[str, str]
    rng: random.Random
    checklist: list[str]
    first_week: int = 0
    propensity: dict[tuple[str, str], float] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    answered: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.propensity = {(e, b): self.rng.uniform(0.15, 0.45) for e in self.cohort_of for b in self.checklist}

    def notice(self, now: datetime, week: int) -> None:
        """Look at messages that arrived since the last look and decide when to act on them."""
        for message_id, posted in self.chat.posted.items():
            if message_id in self.seen or posted.to.user_id is None:
                continue
            self.seen.add(message_id)
            email = posted.to.user_id.removeprefix("console:")
            kind = (posted.key or "").split(":")[0]
            if kind == "consent" and self.rng.random() < CONSENT_RATE:
                self.pending.append(Pending(now + timedelta(minutes=self.rng.randint(1, 30)), message_id, email))
            elif kind == "checklist" and self.rng.random() < ANSWER_RATE:
                self.pending.append(Pending(now + timedelta(hours=self.rng.uniform(0.5, 30)), message_id, email))
            elif kind == "reminder" and (email, week) not in self.answered and self.rng.random() < 0.5:
                self.pending.append(Pending(now + timedelta(hours=self.rng.uniform(0.5, 6)), message_id, email))
            elif kind == "nudge" and self.rng.random() < NUDGE_FEEDBACK:
                self.pending.append(Pending(now + timedelta(hours=self.rng.uniform(1, 24)), message_id, email))

    async def act(self, now: datetime, week: int) -> None:
        """Do everything that was planned for before ``now``."""
        due = sorted(p for p in self.pending if p.at <= now)
        self.pending = [p for p in self.pending if p.at > now]
        for item in due:
            posted = self.chat.posted[item.message_id]
            kind = (posted.key or "").split(":")[0]
            if kind == "consent":
                await self._press(item.message_id, "consent", "Accept", item.at)
            elif kind in ("checklist", "reminder") and (item.email, week) not in self.answered:
                if kind == "reminder":  # the reminder points to the week's checklist: answered there
                    item = replace(item, message_id=self._checklist_of(posted.key or "") or item.message_id)
                gain = WEEKLY_GAIN[self.cohort_of[item.email]] * week
                await self._answer(item, functools.partial(self._p_yes, item.email, gain))
                self.answered.add((item.email, week))
            elif kind == "nudge":
                block = next(
                    b.block_id for b in posted.message.blocks if isinstance(b, Section) and (b.block_id or "").startswith("nudge:")
                )
                await self._press(item.message_id, block or "", self.rng.choice(["Useful", "Useful", "Not for me"]), item.at)

    def _checklist_of(self, reminder_key: str) -> str | None:
        """The message id of the checklist a reminder (same member, cohort and week) points to."""
        key = "checklist:" + reminder_key.removeprefix("reminder:")
        return next((message_id for message_id, posted in self.chat.posted.items() if posted.key == key), None)

    def _p_yes(self, email: str, gain: float, behavior: str) -> float:
        """How likely the member is to say yes about ``behavior`` this week."""
        return min(0.95, self.propensity[(email, behavior)] + gain)

    async def _answer(self, item: Pending, p_yes: Callable[[str], float]) -> None:
        at = item.at
        questions = [
            b for b in self.chat.posted[item.message_id].message.blocks if isinstance(b, Section) and (b.block_id or "").startswith("q:")
        ]
        for section in questions:
            behavior = (section.block_id or "").removeprefix("q:")
            labels = [self._choice(p_yes(behavior))]
            if self.rng.random() < CHANGE_OF_MIND:  # a second thought: the last answer wins
                labels.append(self._choice(p_yes(behavior)))
            for label in labels:
                at += timedelta(seconds=self.rng.randint(5, 90))
                await self._press(item.message_id, section.block_id or "", label, at, twice=self.rng.random() < DOUBLE_CLICK)

    async def _press(self, message_id: str, block_id: str, label: str, at: datetime, twice: bool = False) -> None:
        click = self.chat.click(message_id, block_id, label, at)
        for _ in range(2 if twice else 1):
            reply = await self.inbound.click(click)
            if reply.update is not None:
                await self.chat.update({"message_id": message_id}, reply.update)

    def _choice(self, p_yes: float) -> str:
        r = self.rng.random()
        return "Yes" if r < p_yes else "Partly" if r < p_yes + 0.2 else "No"
