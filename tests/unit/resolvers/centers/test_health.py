"""The circuit breaker of a center: failures in a row make it DEGRADED, then DOWN (open);
only a success closes it again; listeners hear of each change of state, once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from resolvers.centers.health import CenterHealth, CircuitBreaker


class Listener:
    def __init__(self) -> None:
        self.heard: list[CenterHealth] = []

    def __call__(self, health: CenterHealth) -> None:
        self.heard.append(health)

    @property
    def states(self) -> list[str]:
        return [health.state for health in self.heard]


def test_a_new_center_is_unknown_and_closed() -> None:
    breaker = CircuitBreaker()
    assert breaker.health == CenterHealth() and breaker.health.state == "UNKNOWN" and not breaker.is_open


def test_failures_in_a_row_degrade_then_open_the_breaker() -> None:
    listener = Listener()
    breaker = CircuitBreaker(failure_threshold=3, on_change=listener)
    breaker.record_success(12.3456)
    breaker.record_failure("no answer within 2s")
    assert breaker.health.state == "DEGRADED" and not breaker.is_open
    breaker.record_failure("no answer within 2s")
    assert breaker.health.state == "DEGRADED"
    breaker.record_failure("refused")
    assert breaker.is_open and breaker.health.message == "refused"
    assert breaker.health.latency_ms == 12.346  # the last latency measured is kept
    assert listener.states == ["UP", "DEGRADED", "DOWN"]


def test_a_success_in_between_starts_the_count_again() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.record_failure("x")
    breaker.record_success(1.0)
    breaker.record_failure("x")
    assert breaker.health.state == "DEGRADED" and breaker.consecutive_failures == 1


def test_only_a_success_closes_an_open_breaker() -> None:
    listener = Listener()
    breaker = CircuitBreaker(failure_threshold=1, on_change=listener)
    breaker.record_failure("down")
    for _ in range(5):
        breaker.record_failure("still down")
    assert breaker.is_open and listener.states == ["DOWN"]
    breaker.record_success(3.0)
    assert not breaker.is_open and breaker.health.state == "UP" and breaker.health.message is None
    assert listener.states == ["DOWN", "UP"]


def test_each_record_is_stamped_with_the_time_it_was_made() -> None:
    breaker = CircuitBreaker()
    before = datetime.now(UTC)
    breaker.record_failure("x")
    failed_at = breaker.health.checked_at
    breaker.record_success(1.0)
    assert failed_at is not None and breaker.health.checked_at is not None
    assert before <= failed_at <= breaker.health.checked_at <= datetime.now(UTC)


outcomes = st.lists(st.one_of(st.none(), st.floats(0, 5_000)), max_size=30)  # None: a failure; a number: a success's latency


@given(threshold=st.integers(1, 6), outcomes=outcomes)
def test_the_state_follows_the_run_of_failures(threshold: int, outcomes: list[float | None]) -> None:
    listener = Listener()
    breaker = CircuitBreaker(failure_threshold=threshold, on_change=listener)
    run = 0
    opened = False
    for outcome in outcomes:
        if outcome is None:
            breaker.record_failure("x")
            run += 1
            opened = opened or run >= threshold
            assert breaker.health.state == ("DOWN" if opened else "DEGRADED")
        else:
            breaker.record_success(outcome)
            run, opened = 0, False
            assert breaker.health.state == "UP" and breaker.health.latency_ms == round(outcome, 3)
        assert breaker.is_open == opened
    changes = ["UNKNOWN", *listener.states]
    assert all(before != after for before, after in itertools.pairwise(changes))
    assert changes[-1] == breaker.health.state


def test_an_up_center_reads_its_latest_success() -> None:
    breaker = CircuitBreaker()
    breaker.record_success(10.0)
    first = breaker.health
    breaker.record_success(20.12345)  # UP already: noted, and made into the health when read
    latest = breaker.health
    assert latest.state == "UP" and latest.latency_ms == 20.123 and latest.message is None
    assert first.checked_at is not None and latest.checked_at is not None and latest.checked_at >= first.checked_at
    breaker.record_failure("refused")  # a failure keeps the latest latency it knew
    assert breaker.health.state == "DEGRADED" and breaker.health.latency_ms == 20.123
