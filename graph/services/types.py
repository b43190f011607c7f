"""Inference services in the graph: the InferenceService node, its replicas and events."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.billing.types import UsageRecord
from graph.centers.types import ComputeCenter
from graph.core.context import Context
from graph.core.money import Money
from graph.core.relay import Connection, Node, connection_from_page
from graph.core.scalars import BigInt
from graph.data.types import Model
from graph.jobs.types import Job, Placement, ResourceRequest
from graph.services.enums import ServiceProtocol, ServiceState
from resolvers.common.errors import BadRequest
from resolvers.common.ids import decode_cursor, page_size, to_global_id
from resolvers.services.ledger import ServiceEventRecord
from resolvers.services.records import ServiceRow

if TYPE_CHECKING:
    from graph.access.accounts import Account


@strawberry.type
class ServiceReplicas:
    min: int
    max: int
    ready: int = strawberry.field(description="Replicas answering requests now.")
    desired: int = strawberry.field(description="Replicas the autoscaler wants now, between min and max.")


@strawberry.type(description="One event of a service's log; `seq` counts a service's events from 1 without gaps.")
class ServiceEvent:
    seq: int
    at: datetime
    kind: str = strawberry.field(description="STATE, PLACEMENT, SCALE, REPLICA or ARTIFACT.")
    state: ServiceState | None
    replicas_ready: int | None
    message: str | None
    service_key: strawberry.Private[int] = 0

    @property
    def share_tag(self) -> tuple[str, int, int]:
        """Which event this is, for subscribers that share its execution (graph/core/sharing.py)."""
        return ("ServiceEvent", self.service_key, self.seq)

    @classmethod
    def from_record(cls, record: ServiceEventRecord) -> ServiceEvent:
        return cls(
            service_key=record.service_id,
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            state=ServiceState(record.state) if record.state else None,
            replicas_ready=record.replicas_ready,
            message=record.message,
        )


def endpoint_of(service_id: int, protocol: str = "INVOKE") -> str:
    """INVOKE: ``POST <endpoint>``; OPENAI: the base URL of an OpenAI client (``<endpoint>/chat/completions``...)."""
    tail = "v1" if protocol == "OPENAI" else "invoke"
    return f"/services/{to_global_id('InferenceService', service_id)}/{tail}"


@strawberry.type(description="A model version served on a center behind one endpoint, scaled between min and max replicas.")
class InferenceService(Node):
    id: strawberry.ID
    name: str
    state: ServiceState
    failure_reason: str | None
    endpoint: str = strawberry.field(
        description="Where clients send requests: the gateway's own route, never a center's address. "
        "INVOKE: POST JSON to it; OPENAI: the base URL of an OpenAI client (/services/{id}/v1)."
    )
    protocol: ServiceProtocol
    request: ResourceRequest = strawberry.field(description="What each replica asks for.")
    idempotent: bool = strawberry.field(description="A request whose replica fails is retried once on another.")
    deadline_seconds: float = strawberry.field(description="How long one request may take.")
    requests_total: BigInt
    prompt_tokens_total: BigInt = strawberry.field(description="Prompt tokens the servers reported in `usage` (OPENAI).")
    completion_tokens_total: BigInt = strawberry.field(description="Completion tokens the servers reported in `usage` (OPENAI).")
    tokens_total: BigInt = strawberry.field(description="promptTokensTotal + completionTokensTotal.")
    created_at: datetime
    stopped_at: datetime | None
    row: strawberry.Private[ServiceRow]

    @classmethod
    def from_row(cls, row: ServiceRow) -> InferenceService:
        return cls(
            id=strawberry.ID(to_global_id("InferenceService", row.id)),
            name=row.name,
            state=ServiceState(row.state),
            failure_reason=row.failure_reason,
            endpoint=endpoint_of(row.id, row.protocol),
            protocol=ServiceProtocol(row.protocol),
            request=ResourceRequest.from_request(row.request),
            idempotent=row.idempotent,
            deadline_seconds=row.deadline_seconds,
            requests_total=BigInt(row.requests_total),
            prompt_tokens_total=BigInt(row.prompt_tokens_total),
            completion_tokens_total=BigInt(row.completion_tokens_total),
            tokens_total=BigInt(row.prompt_tokens_total + row.completion_tokens_total),
            created_at=row.created_at,
            stopped_at=row.stopped_at,
            row=row,
        )

    @strawberry.field
    async def model(self, info: Info[Context, None]) -> Model:
        model = await info.context.loaders.model.load(self.row.model_id)
        if model is None:
            raise BadRequest("the model is not visible", "NOT_FOUND")
        return model

    @strawberry.field
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.services.centers.get(self.row.center_id) if self.row.center_id is not None else None
        return ComputeCenter.from_center(center) if center else None

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")]:
        account = await info.context.loaders.account.load(self.row.owner_id)
        assert account is not None
        return account

    @strawberry.field
    def replicas(self, info: Info[Context, None]) -> ServiceReplicas:
        ready = info.context.services.services.controller.ready_replicas(self.row)
        return ServiceReplicas(min=self.row.min_replicas, max=self.row.max_replicas, ready=ready, desired=self.row.desired_replicas)

    @strawberry.field(description="Requests in flight per replica above which a replica is added.")
    def target_requests_per_replica(self) -> float:
        return self.row.target_per_replica

    @strawberry.field(description="The center's price per standard-unit-hour for one replica's devices.")
    def price_per_unit_hour(self, info: Info[Context, None]) -> Money | None:
        registry = info.context.services.centers
        center = registry.get(self.row.center_id) if self.row.center_id is not None else None
        if center is None:
            return None
        accelerator = self.row.request.accelerator or "cpu-core"
        offer = next((offer for offer in center.offers if offer.accelerator == accelerator), None)
        return Money(amount=offer.price_per_unit_hour, currency=registry.currency) if offer else None

    @strawberry.field(
        description="What a million of the tokens its servers report cost (quoted when it was deployed); "
        "null: tokens are free. Billed as TOKENS lines naming the service."
    )
    def price_per_million_tokens(self, info: Info[Context, None]) -> Money | None:
        price = self.row.price_per_million_tokens
        return Money(amount=price, currency=info.context.services.centers.currency) if price is not None else None

    @strawberry.field(description="Where the service was placed, with every candidate center and why.")
    def placement(self) -> Placement | None:
        return Placement.from_document(self.row.placement)

    @strawberry.field(description="The replicas running now: each is a job of kind INFERENCE on the service's center.")
    async def replica_jobs(self, info: Info[Context, None]) -> list[Job]:
        rows = (await info.context.services.service_reads.replicas([self.row.id]))[self.row.id]
        return [Job.from_row(row) for row in rows]

    @strawberry.field(description="What the service's replicas used and cost, newest first (one record per replica, at its end).")
    async def usage(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[UsageRecord]:
        listing = await info.context.services.service_reads.usage(self.row, first=page_size(first), after=decode_cursor(after))
        return connection_from_page(listing.page, UsageRecord.from_row, lambda row: row.id, listing.count)

    @strawberry.field(description="The service's events in order; page with `after: <seq>`.")
    async def events(self, info: Info[Context, None], after: int | None = None, first: int | None = None) -> Connection[ServiceEvent]:
        page = await info.context.services.service_reads.events(self.row, after=max(0, after or 0), first=page_size(first))
        last_seq = self.row.last_seq

        async def count() -> int:
            return last_seq

        return connection_from_page(page, ServiceEvent.from_record, lambda record: record.seq, count)
