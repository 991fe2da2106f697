"""Pacing: each send reserves the next free slot of its conversation and its workspace/tenant."""

from __future__ import annotations

import pytest

from bot.ratelimit import TENANT_HEADROOM, Limits, RateLimiter


class Time:
    """A monotonic clock that moves only when a send sleeps: the waits are what is checked."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))


def limiter(limits: Limits) -> tuple[RateLimiter, Time]:
    clock = Time()
    return RateLimiter(limits, clock=clock, sleep=clock.sleep), clock


async def test_a_conversation_gets_one_message_a_second_and_others_do_not_wait() -> None:
    pace, clock = limiter(Limits(per_conversation={"slack": 1.0}, per_tenant={}))
    await pace.acquire("slack", "T1", "T1:U1")
    await pace.acquire("slack", "T1", "T1:U2")
    assert clock.waits == []
    await pace.acquire("slack", "T1", "T1:U1")
    await pace.acquire("slack", "T1", "T1:U1")
    assert clock.waits == [1.0, 2.0]  # queued behind each other, not all for the same slot
    clock.now += 5
    await pace.acquire("slack", "T1", "T1:U1")
    assert clock.waits == [1.0, 2.0]


async def test_a_tenant_is_paced_a_little_under_its_limit_after_a_short_burst() -> None:
    pace, clock = limiter(Limits(per_conversation={}, per_tenant={"teams": 30.0}))
    for i in range(10):
        await pace.acquire("teams", "tenant-a", f"conversation-{i}")
    rate = 30.0 * TENANT_HEADROOM
    burst = rate / 20  # a twentieth of a second's worth, here 1.47 sends
    assert len(clock.waits) == 9  # only the first went at once
    assert clock.waits[-1] == pytest.approx((10 - burst) / rate, abs=1e-6)  # the tenth: its slot, less the burst's slack
    await pace.acquire("teams", "tenant-b", "conversation-0")
    assert len(clock.waits) == 9  # another tenant has its own pace


async def test_retry_after_holds_the_whole_workspace_but_no_other() -> None:
    pace, clock = limiter(Limits(per_conversation={}, per_tenant={}))
    await pace.acquire("slack", "T1", "T1:U1")
    pace.pause("slack", "T1", 2.5)
    await pace.acquire("slack", "T1", "T1:U9")
    await pace.acquire("slack", "T2", "T2:U1")
    assert clock.waits == [2.5]


async def test_platforms_without_limits_never_wait() -> None:
    pace, clock = limiter(Limits(per_conversation={}, per_tenant={}))
    for _ in range(100):
        await pace.acquire("slack", "T1", "T1:U1")
    assert clock.waits == []
