"""``/metrics``: the process's counters (resolvers.common.metrics) and gauges read at scrape time.

The gauges (jobs per state, the network queue, pending webhook deliveries, each center's
breaker) are read when scraped rather than kept up to date on every change: one query
each, at the scraper's pace (every 15 s is usual), and always equal to the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from resolvers.centers.registry import CenterRegistry
from resolvers.common.metrics import REGISTRY
from resolvers.jobs.states import JobState
from store import monitoring as monitoring_store
from store import webhooks as webhook_store
from store.db import Database

BREAKER_STATES = ("UP", "DEGRADED", "DOWN", "UNKNOWN")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Readings:
    jobs: dict[str, int]
    queue_length: int
    webhooks_pending: int
    breakers: dict[str, str]


class _ReadingsCollector(Collector):
    def __init__(self, readings: Readings) -> None:
        self.readings = readings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("aicn_jobs", "Jobs in each state (every account)", labels=["state"])
        for job_state in JobState:
            jobs.add_metric([job_state.value], self.readings.jobs.get(job_state.value, 0))
        yield jobs
        yield GaugeMetricFamily("aicn_network_queue_length", "Jobs waiting for a center", value=self.readings.queue_length)
        yield GaugeMetricFamily(
            "aicn_webhook_outbox_pending", "Webhook deliveries not yet delivered nor given up", value=self.readings.webhooks_pending
        )
        breaker = GaugeMetricFamily(
            "aicn_center_breaker_state",
            "1 for the state each center's circuit breaker is in (DOWN: calls skipped)",
            labels=["center", "state"],
        )
        for center, current in self.readings.breakers.items():
            for state in BREAKER_STATES:
                breaker.add_metric([center, state], 1 if state == current else 0)
        yield breaker


class Monitoring:
    def __init__(self, db: Database, centers: CenterRegistry) -> None:
        self.db = db
        self.centers = centers

    async def readings(self) -> Readings:
        async with self.db.read() as session:
            jobs = await monitoring_store.jobs_per_state(session)
            queue = await monitoring_store.network_queue_length(session)
            pending = await webhook_store.pending_count(session)
        breakers = {center.name: center.health.state for center in self.centers.all()}
        return Readings(jobs, queue, pending, breakers)

    async def exposition(self) -> bytes:
        """The Prometheus text format: the process's counters, then this gateway's readings."""
        readings = CollectorRegistry()
        readings.register(_ReadingsCollector(await self.readings()))
        return generate_latest(REGISTRY) + generate_latest(readings)
