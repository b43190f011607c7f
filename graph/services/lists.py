"""Lists of services: the caller's, or a model's, newest first."""

from __future__ import annotations

from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from graph.services.inputs import ServiceFilter
from graph.services.types import InferenceService
from resolvers.common.ids import decode_cursor, page_size
from resolvers.services.records import ServiceQuery


async def list_services(
    info: Info[Context, None], *, first: int | None, after: str | None, filter: ServiceFilter | None, model_key: int | None = None
) -> Connection[InferenceService]:
    base = (filter or ServiceFilter()).to_query(info.context.viewer.scope)
    query = ServiceQuery(
        owner_id=base.owner_id,
        states=base.states,
        model_ids=(model_key,) if model_key is not None else base.model_ids,
        center_ids=base.center_ids,
    )
    listing = await info.context.services.service_reads.services(query, first=page_size(first), after=decode_cursor(after))
    return connection_from_page(listing.page, InferenceService.from_row, lambda row: row.id, listing.count)
