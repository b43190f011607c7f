"""The health monitor: probes every center in the background and announces changes.

A probe is the only call that may reach a DOWN center, so it is what closes the
breaker. Changes of state go out on the bus channel ``centers`` for the
``centerStatus`` subscription.
"""

from __future__ import annotations

import asyncio

from resolvers.centers.health import CenterHealth
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.common.background import stop_task
from store.bus import InMemoryBus

DOWN_PROBE_INTERVAL = 1.0


class HealthMonitor:
    def __init__(self, registry: CenterRegistry, bus: InMemoryBus) -> None:
        self.registry = registry
        self.bus = bus
        self._tasks: list[asyncio.Task[None]] = []
        self._announcements: set[asyncio.Task[int]] = set()

    def start(self) -> None:
        for center in self.registry.all():
            center.breaker.on_change = lambda health, center=center: self._announce(center, health)
            self._tasks.append(asyncio.create_task(self._probe_forever(center), name=f"probe-{center.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            await stop_task(task)
        self._tasks.clear()

    async def _probe_forever(self, center: Center) -> None:
        while True:
            await self.registry.probe(center)
            interval = center.probe_interval_seconds
            if center.breaker.is_open:
                interval = min(interval, DOWN_PROBE_INTERVAL)
            await asyncio.sleep(interval)

    def _announce(self, center: Center, health: CenterHealth) -> None:
        message = {"center_id": center.id, "state": health.state, "message": health.message}
        task = asyncio.get_running_loop().create_task(self.bus.publish("centers", message))
        self._announcements.add(task)
        task.add_done_callback(self._announcements.discard)
