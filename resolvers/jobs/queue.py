"""The network queue's order: higher priority first, submission order within a priority,
and aging so that a lower priority never waits for ever.

The rule: a waiting job's effective priority is its priority plus one for every full
``AGING_SECONDS`` (60 s) it has waited since submission. Jobs are taken by effective
priority, highest first, then by submission order. A job of priority 0 that has waited
10 minutes therefore goes before a job of priority 9 submitted just now, and any job
overtakes every later submission once it has waited (difference in priorities + 1) minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

AGING_SECONDS = 60.0


class Waiting(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def priority(self) -> int: ...

    @property
    def submitted_at(self) -> datetime: ...


W = TypeVar("W", bound=Waiting)


def effective_priority(priority: int, submitted_at: datetime, now: datetime) -> int:
    waited = max(0.0, (now - submitted_at).total_seconds())
    return priority + int(waited // AGING_SECONDS)


def queue_order(jobs: Sequence[W], now: datetime) -> list[W]:
    """``jobs`` in the order the network queue takes them."""
    return sorted(jobs, key=lambda job: (-effective_priority(job.priority, job.submitted_at, now), job.id))


def queue_positions(jobs: Sequence[W], now: datetime) -> dict[int, int]:
    """Each waiting job's place in the queue, 1 for the next."""
    return {job.id: position for position, job in enumerate(queue_order(jobs, now), start=1)}
