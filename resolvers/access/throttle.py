"""Rate limiting by query cost: one leaky bucket per caller, Shopify style.

A bucket holds up to ``capacity`` points and refills at ``restore_rate`` points per
second. An operation takes its requested cost out of the caller's bucket, or is
refused with the time after which it would fit. Buckets live in this process, or, with
``shared`` (Redis, when the gateway has a Redis bus), in Redis: every replica then draws on the
same bucket per caller. When Redis does not answer, this process's bucket stands in (a caller
is still limited, per replica) and a warning says so.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MAX_BUCKETS = 100_000


class SharedBuckets(Protocol):
    async def take(self, key: str, cost: int) -> tuple[bool, float]:
        """(allowed, points left) of the shared bucket ``key``; ``cost`` 0 only looks."""
        ...


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
        #: the buckets every replica shares (None: this process's own)
        self.shared: SharedBuckets | None = None
        self._warned = False

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

    async def admit(self, key: str, cost: int) -> ThrottleDecision:
        """``take`` on the shared buckets when there are some, else on this process's."""
        if self.shared is not None:
            try:
                allowed, level = await self.shared.take(key, cost)
                return ThrottleDecision(allowed, cost, level, self.capacity, self.restore_rate)
            except Exception:
                self._warn_once()
        return self.take(key, cost)

    async def available(self, key: str) -> float:
        """``peek`` on the shared buckets when there are some, else on this process's."""
        if self.shared is not None:
            try:
                return (await self.shared.take(key, 0))[1]
            except Exception:
                self._warn_once()
        return self.peek(key)

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("the shared rate-limit buckets (Redis) do not answer: each replica limits on its own", exc_info=True)
