"""Center health: a circuit breaker per center, fed by every call and by a background probe.

A center that fails ``failure_threshold`` calls in a row is DOWN: calls to it fail at
once (no waiting on its deadline) until the probe sees it answer again. Fewer failures
in a row make it DEGRADED; a success makes it UP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from store.types import utcnow


@dataclass(frozen=True)
class CenterHealth:
    state: str = "UNKNOWN"  # UP DEGRADED DOWN UNKNOWN
    latency_ms: float | None = None
    checked_at: datetime | None = None
    message: str | None = None


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 3, on_change: Callable[[CenterHealth], None] | None = None) -> None:
        self.failure_threshold = failure_threshold
        self.on_change = on_change
        self.consecutive_failures = 0
        self._health = CenterHealth()
        #: the last success of a center already UP, as (latency in ms, epoch seconds): the health is
        #: made of it when read, not on every call of a fan-out over many centers
        self._success: tuple[float, float] | None = None

    @property
    def health(self) -> CenterHealth:
        if self._success is not None:
            latency_ms, at = self._success
            self._health = CenterHealth("UP", round(latency_ms, 3), datetime.fromtimestamp(at, UTC), None)
            self._success = None
        return self._health

    @property
    def is_open(self) -> bool:
        """True while the center is DOWN: callers skip it without waiting."""
        return self._health.state == "DOWN"

    def record_success(self, latency_ms: float) -> None:
        self.consecutive_failures = 0
        if self._health.state == "UP":
            self._success = (latency_ms, time.time())
        else:
            self._set(CenterHealth("UP", round(latency_ms, 3), utcnow(), None))

    def record_failure(self, message: str) -> None:
        self.consecutive_failures += 1
        state = "DOWN" if self.consecutive_failures >= self.failure_threshold else "DEGRADED"
        if self._health.state == "DOWN":
            state = "DOWN"  # only a successful probe closes the breaker
        self._set(CenterHealth(state, self.health.latency_ms, utcnow(), message))

    def _set(self, health: CenterHealth) -> None:
        changed = health.state != self._health.state
        self._health = health
        self._success = None
        if changed and self.on_change is not None:
            self.on_change(health)
