"""Retries back off exponentially, with jitter, up to a cap."""

from __future__ import annotations

from resolvers.webhooks.delivery import RetryPolicy


def test_each_retry_waits_about_twice_as_long_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=60.0)
    assert [policy.backoff(attempts, 0.0) for attempts in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 12.0]  # the earliest: 75 %
    assert [policy.backoff(attempts, 1.0) for attempts in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]  # the latest: 100 %
    assert policy.backoff(30, 0.0) == 45.0 and policy.backoff(30, 1.0) == 60.0


def test_a_lease_outlasts_an_attempt() -> None:
    assert RetryPolicy(timeout_seconds=10).lease_seconds > 10
