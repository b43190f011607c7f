"""A service's events with replay, under the same gap-free seq/after contract as a job's."""

from __future__ import annotations

from collections.abc import AsyncIterator

from resolvers.common.streams import replay_then_live
from resolvers.services.ledger import ServiceEventRecord
from resolvers.services.states import ENDED_STATES
from store import services as service_store
from store.bus import InMemoryBus
from store.db import Database
from store.service_tables import ServiceRow

REPLAY_BATCH = 500


class ServiceStreams:
    def __init__(self, db: Database, bus: InMemoryBus) -> None:
        self.db = db
        self.bus = bus

    async def _read_after(self, service_id: int, after: int) -> list[ServiceEventRecord]:
        async with self.db.read() as session:
            rows = await service_store.events_after(session, service_id, after, REPLAY_BATCH)
        return [ServiceEventRecord.from_row(row) for row in rows]

    async def _ended_before(self, service_id: int, seq: int) -> bool:
        async with self.db.read() as session:
            service = (await service_store.services_by_ids(session, [service_id])).get(service_id)
        return service is None or (service.state in ENDED_STATES and service.last_seq <= seq)

    async def service_events(self, service: ServiceRow, after: int) -> AsyncIterator[ServiceEventRecord]:
        async with self.bus.subscribe(f"service:{service.id}") as live:
            async for record in replay_then_live(
                live,
                after,
                read_after=lambda last: self._read_after(service.id, last),
                ended_before=lambda last: self._ended_before(service.id, last),
                from_message=ServiceEventRecord.from_message,
                batch=REPLAY_BATCH,
            ):
                yield record
