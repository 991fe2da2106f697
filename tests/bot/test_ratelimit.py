"""Pacing: each send reserves the next free slot of its conversation and its workspace/tenant."""

from __future__ import annotations

import pytest

from bot.ratelimit import TENANT_HEADROOM, Limits, RateLimiter


class Clock:
    """A monotonic clock that stands still unless the test moves it: the waits are what is checked."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(limits: Limits) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(limits, clock=clock), clock


def test_a_conversation_gets_one_message_a_second_and_others_do_not_wait() -> None:
    pace, clock = limiter(Limits(per_conversation={"slack": 1.0}, per_tenant={}))
    assert pace.reserve("slack", "T1", "T1:U1") == 0
    assert pace.reserve("slack", "T1", "T1:U2") == 0
    # Queued behind each other, not all for the same slot.
    assert [pace.reserve("slack", "T1", "T1:U1") for _ in range(2)] == [1.0, 2.0]
    clock.now += 5
    assert pace.reserve("slack", "T1", "T1:U1") == 0


def test_a_tenant_is_paced_a_little_under_its_limit_after_a_short_burst() -> None:
    pace, _clock = limiter(Limits(per_conversation={}, per_tenant={"teams": 30.0}))
    waits = [pace.reserve("teams", "tenant-a", f"conversation-{i}") for i in range(10)]
    rate = 30.0 * TENANT_HEADROOM
    burst = rate / 20  # a twentieth of a second's worth, here 1.47 sends
    assert waits[0] == 0 and all(w > 0 for w in waits[1:])
    assert waits[-1] == pytest.approx((10 - burst) / rate)  # the tenth: its slot, less the burst's slack
    assert pace.reserve("teams", "tenant-b", "conversation-0") == 0  # another tenant has its own pace


def test_retry_after_holds_the_whole_workspace_but_no_other() -> None:
    pace, _clock = limiter(Limits(per_conversation={}, per_tenant={}))
    assert pace.reserve("slack", "T1", "T1:U1") == 0
    pace.pause("slack", "T1", 2.5)
    assert pace.reserve("slack", "T1", "T1:U9") == 2.5
    assert pace.reserve("slack", "T2", "T2:U1") == 0


def test_platforms_without_limits_never_wait() -> None:
    pace, _clock = limiter(Limits(per_conversation={}, per_tenant={}))
    assert {pace.reserve("slack", "T1", "T1:U1") for _ in range(100)} == {0}


def test_a_retry_after_before_the_first_send_keeps_the_tenants_pace() -> None:
    """A row checked with the platform after a crash can draw a 429 before anything was sent
    to its tenant: the pause must not replace the tenant's pace with no pace at all."""
    pace, clock = limiter(Limits(per_conversation={}, per_tenant={"teams": 30.0}))
    pace.pause("teams", "tenant-a", 1.0)
    assert pace.reserve("teams", "tenant-a", "conversation-0") == pytest.approx(1.0)
    clock.now += 1.0
    waits = [pace.reserve("teams", "tenant-a", f"conversation-{i}") for i in range(1, 100)]
    # The pause spent the burst: from its end, one send per slot, the hundredth 99 slots after the first.
    assert waits[-1] == pytest.approx(99 / (30.0 * TENANT_HEADROOM))
