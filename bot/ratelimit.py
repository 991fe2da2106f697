"""Pacing sends to what each platform allows, per conversation and per workspace/tenant.

Written by hand because the limits are keyed by target (thousands of DM channels, a few
tenants) and must be reserved inside the delivery loop; GCRA is a few lines, and no
library in the stack paces before sending (slack_sdk retries *after* a 429).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TENANT_HEADROOM = 0.98


class Schedule:
    """GCRA pacing for one key: ``rate`` sends per second, bursts of up to ``burst``.

    Each send reserves the next free slot (the "theoretical arrival time"), so waiting
    senders are served in order and each sleeps exactly until its own slot: no herd of
    waiters polling for a token.
    """

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.tat = float("-inf")

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.tolerance)

    def reserve(self, at: float) -> None:
        self.tat = max(self.tat, at) + self.interval


@dataclass(frozen=True)
class Limits:
    """Sends per second per platform: per conversation (a DM or channel) and per
    workspace/tenant. None means no limit of that kind. Defaults are the platforms'
    published limits: Slack chat.postMessage about 1 per second per channel; Teams 7 per
    second per conversation and 30 per second per app per tenant."""

    per_conversation: dict[str, float] = field(default_factory=lambda: {"slack": 1.0, "teams": 7.0})
    per_tenant: dict[str, float] = field(default_factory=lambda: {"teams": 30.0})


class RateLimiter:
    """Pacing for (platform, tenant, conversation) keys, with Retry-After pauses. Each send
    reserves its slot before it waits, so concurrent senders never take the same one."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._schedules: dict[tuple[str, str], Schedule] = {}  # per (platform, tenant)
        # Per (platform, conversation): only the next free instant, since a conversation is
        # paced without bursts. A fan-out paces thousands of DMs, each once or twice.
        self._conversations: dict[tuple[str, str], float] = {}

    def reserve(self, platform: str, tenant: str, conversation: str) -> float:
        """Reserve the next slot for one send to ``conversation`` (in ``tenant``); returns the
        seconds to wait for it, 0 for at once. (Not a coroutine: a fan-out asks once per
        message, and nearly always may send at once.)"""
        now = self._clock()
        pace = self._tenant(platform, tenant)
        start = pace.earliest(now)
        if (rate := self.limits.per_conversation.get(platform)) is not None:
            key = (platform, conversation)
            start = max(start, self._conversations.get(key, start))
            if len(self._conversations) > 50_000:  # forget idle conversations in very long runs
                self._conversations = {k: at for k, at in self._conversations.items() if at > now}
            self._conversations[key] = start + 1.0 / rate
        pace.reserve(start)
        return start - now

    def slowest_rate(self, platforms: list[str]) -> float | None:
        """The slowest pace (sends per second) any workspace/tenant of ``platforms`` is held to,
        or None when none of them has a limit."""
        rates = [rate * TENANT_HEADROOM for platform, rate in self.limits.per_tenant.items() if platform in platforms]
        return min(rates) if rates else None

    def pause(self, platform: str, tenant: str, seconds: float) -> None:
        """A 429 said Retry-After: hold every later send to that workspace/tenant until then."""
        schedule = self._tenant(platform, tenant)
        schedule.tat = max(schedule.tat, self._clock() + seconds + schedule.tolerance)

    def _tenant(self, platform: str, tenant: str) -> Schedule:
        """The workspace/tenant's schedule, created at its platform's pace (whoever asks first,
        a send or a pause); without a configured limit it only holds Retry-After pauses."""
        schedule = self._schedules.get((platform, tenant))
        if schedule is None:
            if (rate := self.limits.per_tenant.get(platform)) is None:
                schedule = Schedule(math.inf)
            else:
                # Platforms count in windows, and requests reach them with some jitter: pacing
                # exactly at the limit still draws 429s, each costing a second's pause. A little
                # under it (2%), with bursts of a twentieth of a second's worth, does not.
                paced = rate * TENANT_HEADROOM
                schedule = Schedule(paced, max(1.0, paced / 20))
            self._schedules[platform, tenant] = schedule
        return schedule
