"""The data root fields: the caller's datasets and models."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from graph.data.transfers import Transfer
from graph.data.types import Dataset, Model
from resolvers.common.ids import decode_cursor, page_size


@strawberry.type
class DataQuery:
    @strawberry.field(description="The caller's datasets, newest first.")
    async def datasets(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Dataset]:
        reads, scope = info.context.services.data_reads, info.context.viewer.scope
        listing = await reads.datasets(scope, first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, Dataset.from_row, lambda row: row.id, listing.count)

    @strawberry.field(description="The caller's replica transfers (replicateDataset), newest first.")
    async def transfers(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Transfer]:
        reads, scope = info.context.services.data_reads, info.context.viewer.scope
        listing = await reads.transfers(scope, first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, Transfer.from_row, lambda row: row.id, listing.count)

    @strawberry.field(description="The caller's models, newest first.")
    async def models(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Model]:
        reads, scope = info.context.services.data_reads, info.context.viewer.scope
        listing = await reads.models(scope, first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, Model.from_row, lambda row: row.id, listing.count)
