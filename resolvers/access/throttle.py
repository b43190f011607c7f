"""Rate limiting by query cost: one leaky bucket per caller, Shopify style.

A bucket holds up to ``capacity`` points and refills at ``restore_rate`` points per
second. An operation takes its requested cost out of the caller's bucket, or is
refused with the time after which it would fit. Buckets live in this process: with
several gateway instances each has its own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    cost: int
    available: float
    capacity: int
    restore_rate: float

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until the refused cost fits (at least 1)."""
        if self.allowed:
            return 0
        return max(1, math.ceil((self.cost - self.available) / self.restore_rate))


class Throttle:
    def __init__(self, capacity: int, restore_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self.clock = clock  #: public so that tests can drive time
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (points, at)

    def _level(self, key: str, now: float) -> float:
        points, at = self._buckets.get(key, (float(self.capacity), now))
        return min(float(self.capacity), points + (now - at) * self.restore_rate)

    def peek(self, key: str) -> float:
        """The points ``key`` has now, without taking any."""
        return self._level(key, self.clock())

    def take(self, key: str, cost: int) -> ThrottleDecision:
        now = self.clock()
        level = self._level(key, now)
        allowed = cost <= level
        if allowed:
            level -= cost
        self._buckets[key] = (level, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_BUCKETS:  # an idle bucket is full anyway: forgetting it is exact
            self._buckets.popitem(last=False)
        return ThrottleDecision(allowed, cost, level, self.capacity, self.restore_rate)
