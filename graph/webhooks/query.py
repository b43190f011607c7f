"""The webhook root field: the caller's endpoints (an administrator's: everyone's), newest first."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, connection_from_page
from graph.webhooks.types import WebhookEndpoint
from resolvers.common.ids import decode_cursor, page_size


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The caller's webhook endpoints, newest first (an admin's: every account's).")
    async def webhook_endpoints(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[WebhookEndpoint]:
        listing = await info.context.services.webhooks.endpoints(
            info.context.viewer.scope, first=page_size(first), after=decode_cursor(after)
        )
        return connection_from_page(listing.page, WebhookEndpoint.from_row, lambda row: row.id, listing.count)
