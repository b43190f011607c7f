"""The services' root field: the caller's inference services."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection
from graph.services.inputs import ServiceFilter
from graph.services.lists import list_services
from graph.services.types import InferenceService


@strawberry.type
class ServiceQuery:
    @strawberry.field(description="The caller's inference services, newest first.")
    async def services(
        self, info: Info[Context, None], filter: ServiceFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[InferenceService]:
        return await list_services(info, first=first, after=after, filter=filter)
