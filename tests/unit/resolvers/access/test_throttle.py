"""The leaky bucket: a cost is taken while it fits, refills at the restore rate up to the
capacity, and a refusal says when to retry. Time is a hand-driven clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.access import throttle
from resolvers.access.throttle import Throttle, ThrottleDecision


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_caller_starts_with_a_full_bucket_and_spends_it() -> None:
    clock = Clock()
    bucket = Throttle(capacity=100, restore_rate=10.0, clock=clock)
    assert bucket.peek("a") == 100
    first = bucket.take("a", 60)
    assert first.allowed and first.available == 40 and first.retry_after_seconds == 0
    refused = bucket.take("a", 41)
    assert not refused.allowed and refused.available == 40 and refused.retry_after_seconds == 1
    assert bucket.peek("a") == 40  # a refusal takes nothing
    assert bucket.take("a", 40).allowed and bucket.peek("a") == 0


def test_the_bucket_refills_at_the_restore_rate_up_to_its_capacity() -> None:
    clock = Clock()
    bucket = Throttle(capacity=100, restore_rate=10.0, clock=clock)
    bucket.take("a", 100)
    clock.now += 2.5
    assert bucket.peek("a") == 25
    clock.now += 3600
    assert bucket.peek("a") == 100


def test_retry_after_is_when_the_cost_would_fit() -> None:
    clock = Clock()
    bucket = Throttle(capacity=1_000, restore_rate=50.0, clock=clock)
    bucket.take("a", 1_000)
    refused = bucket.take("a", 501)
    assert refused.retry_after_seconds == 11  # 501 points at 50 a second: 10.02 s, rounded up
    clock.now += 10
    assert not bucket.take("a", 501).allowed
    clock.now += 1
    assert bucket.take("a", 501).allowed


def test_callers_have_separate_buckets() -> None:
    bucket = Throttle(capacity=10, restore_rate=1.0, clock=Clock())
    assert bucket.take("a", 10).allowed
    assert bucket.take("b", 10).allowed and not bucket.take("a", 1).allowed


def test_a_cost_above_the_capacity_is_never_allowed() -> None:
    clock = Clock()
    bucket = Throttle(capacity=10, restore_rate=1.0, clock=clock)
    clock.now += 10**6
    decision = bucket.take("a", 11)
    assert not decision.allowed and decision.retry_after_seconds == 1


def test_only_the_oldest_idle_buckets_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_BUCKETS", 3)
    clock = Clock()
    bucket = Throttle(capacity=10, restore_rate=1.0, clock=clock)
    for key in ("a", "b", "c"):
        bucket.take(key, 10)
    bucket.take("a", 0)  # used again: now the newest
    bucket.take("d", 10)  # one too many: "b" goes, and comes back full
    assert bucket.peek("b") == 10 and bucket.peek("a") == 0 and bucket.peek("c") == 0


@given(
    capacity=st.integers(1, 10_000),
    rate=st.floats(0.01, 1_000),
    steps=st.lists(st.tuples(st.floats(0, 100), st.integers(0, 12_000)), max_size=40),
)
def test_no_caller_ever_gets_more_than_the_capacity_plus_what_time_restored(
    capacity: int, rate: float, steps: list[tuple[float, int]]
) -> None:
    clock = Clock()
    start = clock.now
    bucket = Throttle(capacity, rate, clock)
    granted = 0
    for wait, cost in steps:
        clock.now += wait
        level = bucket.peek("a")
        decision = bucket.take("a", cost)
        assert decision.allowed == (cost <= level)
        assert 0 <= decision.available <= capacity + 1e-6
        if decision.allowed:
            granted += cost
    assert granted <= capacity + (clock.now - start) * rate + 1e-6


@given(cost=st.integers(1, 10**6), available=st.floats(0, 10**6), rate=st.floats(0.001, 10**4))
def test_retry_after_is_whole_seconds_and_enough(cost: int, available: float, rate: float) -> None:
    decision = ThrottleDecision(False, cost, available, 10**6, rate)
    seconds = decision.retry_after_seconds
    assert seconds >= 1 and isinstance(seconds, int)
    assert available + seconds * rate >= cost or math.isclose(available + seconds * rate, cost)
    # and not a second more than needed (but for float rounding, which can only make it longer)
    assert seconds == 1 or available + (seconds - 1) * rate < cost * (1 + 1e-9)
