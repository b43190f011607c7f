"""The network queue's order: priority first, submission order within it, aging against starvation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from resolvers.jobs.queue import AGING_SECONDS, effective_priority, queue_order, queue_positions

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Waiting:
    id: int
    priority: int
    submitted_at: datetime


def waited(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_higher_priority_goes_first_and_submission_order_breaks_ties() -> None:
    jobs = [Waiting(1, 0, waited(5)), Waiting(2, 5, waited(4)), Waiting(3, 5, waited(3)), Waiting(4, -1, waited(2))]
    assert [job.id for job in queue_order(jobs, NOW)] == [2, 3, 1, 4]
    assert queue_positions(jobs, NOW) == {2: 1, 3: 2, 1: 3, 4: 4}


def test_a_waiting_job_gains_one_level_per_aging_interval() -> None:
    assert effective_priority(0, waited(AGING_SECONDS - 0.001), NOW) == 0
    assert effective_priority(0, waited(AGING_SECONDS), NOW) == 1
    assert effective_priority(-3, waited(10 * AGING_SECONDS), NOW) == 7
    assert effective_priority(4, NOW + timedelta(seconds=5), NOW) == 4  # a clock skew never lowers it


def test_a_low_priority_job_is_not_starved_by_a_stream_of_high_priority_ones() -> None:
    old_low = Waiting(1, 0, waited(11 * AGING_SECONDS))
    fresh_high = [Waiting(10 + n, 10, waited(n)) for n in range(50)]
    assert queue_order([*fresh_high, old_low], NOW)[0] is old_low
    young_low = Waiting(2, 0, waited(9 * AGING_SECONDS))
    assert queue_order([young_low, *fresh_high], NOW)[-1] is young_low
