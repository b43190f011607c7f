"""A service's live events over graphql-transport-ws on /graphql."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.fanout import follow
from graph.services.types import ServiceEvent
from resolvers.common.errors import BadRequest


@strawberry.type
class ServiceSubscription:
    @strawberry.subscription(
        description="A service's events: those after `after` (replayed from the log), then live; ends after STOPPED or FAILED."
    )
    async def service_events(
        self, info: Info[Context, None], service_id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[ServiceEvent, None]:
        service = await info.context.services.services.find(info.context.viewer, service_id)
        if service is None:
            raise BadRequest("no such service", "NOT_FOUND")
        streams = info.context.services.service_streams
        async for event in follow(
            info.context, ("Service", service.id), lambda last: streams.service_events(service, last), ServiceEvent.from_record, after or 0
        ):
            yield event
