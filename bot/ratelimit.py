"""Pacing sends to what each platform allows, per conversation and per workspace/tenant.

Written by hand because the limits are keyed by target (thousands of DM channels, a few
tenants) and must be awaited inside the delivery loop; the token bucket is a few lines,
and no library in the stack (slack_sdk retries *after* a 429, it does not pace before).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` sends per second on average, bursts of up to ``burst``."""

    rate: float
    burst: float = 1.0
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def wait_time(self, now: float) -> float:
        """Take a token if there is one (0.0), or say how long until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class Limits:
    """Sends per second per platform: per conversation (a DM or channel) and per
    workspace/tenant. None means no limit of that kind. Defaults are the platforms'
    published limits: Slack chat.postMessage about 1 per second per channel; Teams 7 per
    second per conversation and 30 per second per app per tenant."""

    per_conversation: dict[str, float] = field(default_factory=lambda: {"slack": 1.0, "teams": 7.0})
    per_tenant: dict[str, float] = field(default_factory=lambda: {"teams": 30.0})


class RateLimiter:
    """Awaitable pacing for (platform, tenant, conversation) keys, with Retry-After pauses."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._paused_until: dict[tuple[str, str], float] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, platform: str, tenant: str, conversation: str) -> None:
        """Wait until one more send to ``conversation`` (in ``tenant``) is allowed."""
        keys = []
        if (rate := self.limits.per_tenant.get(platform)) is not None:
            keys.append((("tenant", f"{platform}:{tenant}"), rate, max(1.0, rate)))
        if (rate := self.limits.per_conversation.get(platform)) is not None:
            keys.append((("conversation", f"{platform}:{conversation}"), rate, 1.0))
        while True:
            async with self._lock:
                now = time.monotonic()
                pause = max((self._paused_until.get(k, 0.0) - now for k, _r, _b in keys), default=0.0)
                if pause <= 0:
                    waits = [self._bucket(k, r, b).wait_time(now) for k, r, b in keys]
                    pause = max(waits, default=0.0)
                    if pause <= 0:
                        return
                    # Give back the tokens taken from buckets that had one; retry later.
                    for (k, _r, _b), w in zip(keys, waits, strict=True):
                        if w == 0.0:
                            self._buckets[k].tokens += 1
            await asyncio.sleep(pause)

    def pause(self, platform: str, tenant: str, seconds: float) -> None:
        """A 429 said Retry-After: hold every send to that workspace/tenant until then."""
        key = ("tenant", f"{platform}:{tenant}")
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), time.monotonic() + seconds)

    def _bucket(self, key: tuple[str, str], rate: float, burst: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 50_000:  # forget idle conversations in very long runs
                self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(rate, burst)
        return bucket
