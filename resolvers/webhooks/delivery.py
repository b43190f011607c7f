"""The deliverer: works the outbox until every delivery is DELIVERED or has used its attempts.

Each round takes the due deliveries, leases each one (a single UPDATE, so two gateways on one
database never send the same attempt twice at once), checks its destination again, sends it,
and records the attempt. A failed attempt is retried after an exponential backoff with jitter.
A gateway killed mid-attempt leaves a lease that runs out; another round (here or on another
gateway) sends the same delivery again with the same delivery id: delivery is at least once,
and receivers drop repeats by that id.

The deliverer is told, not polling: news on the bus wakes it for a new delivery, and after each
round it sleeps until the next attempt falls due (a retry's backoff, a dead deliverer's lease
running out). ``poll_seconds`` is only the safety net, for news the bus lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import httpx

from resolvers.common import metrics
from resolvers.common.background import Alarm, stop_task
from resolvers.common.tracing import span
from resolvers.webhooks.destinations import DestinationPolicy, DestinationRefused, resolve
from resolvers.webhooks.outbox import CHANNEL
from resolvers.webhooks.sender import AttemptResult, Letter, send
from store import webhooks as webhook_store
from store.bus import InMemoryBus
from store.db import Database
from store.types import utcnow

log = logging.getLogger(__name__)
BATCH = 50
#: the shortest sleep between rounds when something is due already (another deliverer's race)
MIN_SLEEP_SECONDS = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    base_seconds: float = 2.0
    max_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    #: the safety net: the longest the deliverer sleeps with no news (a bus message lost)
    poll_seconds: float = 10.0
    concurrency: int = 8

    @property
    def lease_seconds(self) -> float:
        """Longer than any attempt: a live deliverer never loses its lease mid-attempt."""
        return self.timeout_seconds + 5.0

    def backoff(self, attempts: int, draw: float) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: base·2^(n-1), capped,
        between 75% and 100% of that (``draw`` in [0, 1)) so that many failures do not retry in step."""
        delay = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempts - 1))
        return float(delay * (0.75 + 0.25 * draw))


class WebhookDeliverer:
    def __init__(self, db: Database, bus: InMemoryBus, destinations: DestinationPolicy, retry: RetryPolicy) -> None:
        self.db = db
        self.bus = bus
        self.destinations = destinations
        self.retry = retry
        self._alarm = Alarm()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(trust_env=False)
        self._listener = asyncio.create_task(self._listen(), name="webhook-outbox-listener")
        self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    async def stop(self) -> None:
        await stop_task(self._task)
        await stop_task(self._listener)
        if self._client is not None:
            await self._client.aclose()

    async def _listen(self) -> None:
        async with self.bus.subscribe(CHANNEL) as news:
            while True:
                if await news.get() is not None:
                    self._alarm.ring()

    async def _run(self) -> None:
        while True:
            try:
                busy = await self.work_once()
                wait = 0.0 if busy >= BATCH else await self._until_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the next round tries again, after a first retry's wait
                log.warning("webhook delivery round failed", exc_info=True)
                wait = min(self.retry.poll_seconds, self.retry.base_seconds)
            if wait > 0:
                await self._alarm.sleep(wait)

    async def _until_due(self) -> float:
        """Seconds until a pending delivery falls due, within the safety net's ``poll_seconds``."""
        now = utcnow()
        async with self.db.read() as session:
            due = await webhook_store.next_due_at(session, now)
        if due is None:
            return self.retry.poll_seconds
        return min(self.retry.poll_seconds, max(MIN_SLEEP_SECONDS, (due - now).total_seconds()))

    async def work_once(self) -> int:
        """One round: send every delivery due now (up to a batch); how many were taken."""
        now = utcnow()
        async with self.db.read() as session:
            due = await webhook_store.due_delivery_ids(session, now, BATCH)
        taken: list[int] = []
        until = now + timedelta(seconds=self.retry.lease_seconds)
        for delivery_id in due:
            async with self.db.transaction() as session:
                if await webhook_store.lease(session, delivery_id, now, until):
                    taken.append(delivery_id)
        gate = asyncio.Semaphore(self.retry.concurrency)

        async def one(delivery_id: int) -> None:
            async with gate:
                await self.deliver(delivery_id)

        await asyncio.gather(*(one(delivery_id) for delivery_id in taken))
        return len(taken)

    async def deliver(self, delivery_id: int) -> None:
        async with self.db.read() as session:
            found = await webhook_store.delivery_with_endpoint(session, delivery_id)
        if found is None:
            return
        delivery, endpoint = found
        letter = Letter(endpoint.url, delivery.delivery_id, delivery.event_kind, delivery.body.encode(), endpoint.secret)
        with span("webhook delivery", {"aicn.webhook.delivery_id": delivery.delivery_id, "aicn.webhook.kind": delivery.event_kind}):
            result = await self._attempt(letter)
        await self._record(delivery_id, delivery.event_kind, result)

    async def _attempt(self, letter: Letter) -> AttemptResult:
        assert self._client is not None, "the deliverer has not started"
        try:
            destination = await resolve(letter.url, self.destinations)  # again: DNS may have changed since registration
        except DestinationRefused as refusal:
            metrics.webhook_attempts.labels(letter.event_kind, "refused").inc()
            return AttemptResult(None, f"{refusal.code}: {refusal.message}", 0.0)
        result = await send(self._client, letter, destination, self.retry.timeout_seconds)
        metrics.webhook_attempts.labels(letter.event_kind, "delivered" if result.delivered else "failed").inc()
        metrics.webhook_attempt_seconds.observe(result.duration_ms / 1000)
        return result

    async def _record(self, delivery_id: int, kind: str, result: AttemptResult) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            delivery = await webhook_store.lock_delivery(session, delivery_id)
            if delivery is None or delivery.state != webhook_store.PENDING:
                return  # cancelled meanwhile (the endpoint was deleted)
            webhook_store.add_attempt(
                session, delivery, at=now, status_code=result.status_code, error=result.error, duration_ms=result.duration_ms
            )
            delivery.leased_until = None
            if result.delivered:
                delivery.state, delivery.delivered_at, delivery.next_attempt_at = webhook_store.DELIVERED, now, None
            elif delivery.attempts >= self.retry.max_attempts:
                delivery.state, delivery.next_attempt_at = webhook_store.FAILED, None
            else:
                delivery.next_attempt_at = now + timedelta(seconds=self.retry.backoff(delivery.attempts, random.random()))
            final = delivery.state
        if final != webhook_store.PENDING:
            metrics.webhook_deliveries.labels(kind, final).inc()
