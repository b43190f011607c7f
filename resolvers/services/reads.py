"""What the face reads of services: by id, lists, events, replicas, usage."""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.common.reading import Listing, Page, Reader
from resolvers.services.ledger import ServiceEventRecord
from store import services as service_store
from store.billing_tables import UsageRecordRow
from store.service_tables import ServiceRow
from store.services import ServiceQuery
from store.tables import JobRow


class ServiceReads(Reader):
    async def by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, ServiceRow]:
        return await self.read(lambda session: service_store.services_by_ids(session, ids, scope))

    async def services(self, query: ServiceQuery, *, first: int, after: int | None) -> Listing[ServiceRow]:
        return await self.listing(
            lambda session: service_store.services_page(session, query, first=first, after=after),
            lambda session: service_store.count_services(session, query),
        )

    async def by_models(self, model_ids: Sequence[int], scope: int | None) -> dict[int, list[ServiceRow]]:
        return await self.read(lambda session: service_store.services_by_models(session, model_ids, scope))

    async def events(self, service: ServiceRow, *, after: int, first: int) -> Page[ServiceEventRecord]:
        rows = await self.read(lambda session: service_store.events_after(session, service.id, after, first + 1))
        return Page(rows=[ServiceEventRecord.from_row(row) for row in rows[:first]], has_next=len(rows) > first, has_previous=after > 0)

    async def replicas(self, service_ids: Sequence[int]) -> dict[int, list[JobRow]]:
        return await self.read(lambda session: service_store.live_replicas(session, service_ids))

    async def usage(self, service: ServiceRow, *, first: int, after: int | None) -> Listing[UsageRecordRow]:
        return await self.listing(
            lambda session: service_store.usage_page(session, service.id, first=first, after=after),
            lambda session: service_store.count_usage(session, service.id),
        )
