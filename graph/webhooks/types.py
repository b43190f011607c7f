"""Webhook endpoints, their deliveries and each delivery's attempts (never an endpoint's secret, but once)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.relay import Connection, Node, connection_from_page
from resolvers.common.ids import decode_cursor, page_size, to_global_id
from resolvers.webhooks.events import EventKind
from resolvers.webhooks.records import WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow

if TYPE_CHECKING:
    from graph.access.accounts import Account


@strawberry.enum(
    description="What an endpoint can be told about: JOB_ENDED (a job reached SUCCEEDED, FAILED or CANCELLED), "
    "BUDGET_ALERT (a month's spending crossed 50, 80 or 100% of the budget), SERVICE_STATE (an inference service changed state)."
)
class WebhookEventKind(enum.Enum):
    JOB_ENDED = EventKind.JOB_ENDED.value
    BUDGET_ALERT = EventKind.BUDGET_ALERT.value
    SERVICE_STATE = EventKind.SERVICE_STATE.value


@strawberry.enum(
    description="PENDING: not delivered yet, the next attempt is due at `nextAttemptAt`; DELIVERED: the receiver answered 2xx; "
    "FAILED: every attempt failed, no more are made; CANCELLED: the endpoint was deleted before it was delivered."
)
class WebhookDeliveryState(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type(description="One try at sending a delivery.")
class WebhookAttempt:
    number: int
    at: datetime
    status_code: int | None = strawberry.field(description="The receiver's HTTP status; null when no answer came.")
    error: str | None
    duration_ms: float | None

    @classmethod
    def from_row(cls, row: WebhookAttemptRow) -> WebhookAttempt:
        return cls(number=row.number, at=row.at, status_code=row.status_code, error=row.error, duration_ms=row.duration_ms)


@strawberry.type(description="One event for one endpoint, sent until the receiver answers 2xx (at least once).")
class WebhookDelivery:
    delivery_id: str = strawberry.field(
        description="Sent as `Aicn-Delivery-Id` and `id` in the body, the same on every attempt: receivers drop repeats by it."
    )
    event_id: str = strawberry.field(description="The same for the deliveries of one event to several endpoints.")
    event_kind: WebhookEventKind
    state: WebhookDeliveryState
    payload: str = strawberry.field(description="The exact JSON body sent (the signature covers it).")
    attempt_count: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    row: strawberry.Private[WebhookDeliveryRow]

    @classmethod
    def from_row(cls, row: WebhookDeliveryRow) -> WebhookDelivery:
        return cls(
            delivery_id=row.delivery_id,
            event_id=row.event_id,
            event_kind=WebhookEventKind(row.event_kind),
            state=WebhookDeliveryState(row.state),
            payload=row.body,
            attempt_count=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            row=row,
        )

    @strawberry.field(description="Every attempt so far, oldest first.")
    async def attempts(self, info: Info[Context, None]) -> list[WebhookAttempt]:
        rows = await info.context.loaders.webhooks.attempts.load(self.row.id)
        return [WebhookAttempt.from_row(row) for row in rows]


@strawberry.type(description="An HTTPS URL that receives signed events of the kinds it names.")
class WebhookEndpoint(Node):
    id: strawberry.ID
    url: str
    event_kinds: list[WebhookEventKind]
    description: str | None
    created_at: datetime
    row: strawberry.Private[WebhookEndpointRow]

    @classmethod
    def from_row(cls, row: WebhookEndpointRow) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            url=row.url,
            event_kinds=[WebhookEventKind(kind) for kind in row.event_kinds],
            description=row.description,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        return await info.context.loaders.account.load(self.row.account_id)

    @strawberry.field(description="Its deliveries, newest first; `states` keeps only those.")
    async def deliveries(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        states: list[WebhookDeliveryState] | None = None,
    ) -> Connection[WebhookDelivery]:
        wanted = [state.value for state in states or []]
        listing = await info.context.services.webhooks.deliveries(self.row.id, wanted, first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, WebhookDelivery.from_row, lambda row: row.id, listing.count)
