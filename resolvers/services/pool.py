"""The gateway's live view of one service: its READY replicas, requests in flight, counts.

Kept in memory (rebuilt after a restart by health-checking the replicas found in the
database); the database keeps what must last.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Replica:
    job_id: int
    url: str
    ordinal: int
    in_flight: int = 0
    failed_checks: int = 0
    checked_at: float = 0.0


@dataclass
class ServicePool:
    service_id: int
    ready: dict[int, Replica] = field(default_factory=dict)
    #: every replica job seen alive (to notice the ones that end)
    known: set[int] = field(default_factory=set)
    #: replica jobs that were READY at least once
    served: set[int] = field(default_factory=set)
    #: replica jobs the gateway itself stopped (their end is no failure)
    retired: set[int] = field(default_factory=set)
    addresses: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0
    #: when in-flight per replica last went above target, and when the service was last busy
    above_since: float | None = None
    busy_at: float = field(default_factory=time.monotonic)
    waiting_for_replica: int = 0
    lost: bool = False
    failures_in_a_row: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: a service on a PEER center: its replicas ready at the peer, as last read there
    remote_ready: int | None = None

    def pick(self, exclude: set[int] | None = None) -> Replica | None:
        """The READY replica with the fewest requests in flight."""
        choices = [replica for replica in self.ready.values() if not exclude or replica.job_id not in exclude]
        return min(choices, key=lambda replica: (replica.in_flight, replica.job_id), default=None)

    def add(self, replica: Replica) -> None:
        self.ready[replica.job_id] = replica
        self.served.add(replica.job_id)
        self.failures_in_a_row = 0
        self.changed.set()

    def drop(self, job_id: int) -> Replica | None:
        return self.ready.pop(job_id, None)

    async def wait_for_replica(self, timeout: float, exclude: set[int] | None = None) -> Replica | None:
        """A READY replica, waiting up to ``timeout`` seconds for one (a cold start)."""
        deadline = time.monotonic() + timeout
        self.waiting_for_replica += 1
        try:
            while (replica := self.pick(exclude)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.clear()
                try:
                    async with asyncio.timeout(min(left, 0.5)):
                        await self.changed.wait()
                except TimeoutError:
                    pass
            return replica
        finally:
            self.waiting_for_replica -= 1
