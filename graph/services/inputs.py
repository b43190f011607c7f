"""The services' inputs: deploy, scale, stop, invoke, and the list filter."""

from __future__ import annotations

import strawberry

from graph.core.scalars import JSON
from graph.jobs.enums import PlacementPolicy
from graph.jobs.inputs import ResourceRequestInput
from graph.services.enums import ServiceProtocol, ServiceState
from resolvers.common.ids import int_key
from resolvers.services.records import ServiceQuery
from resolvers.services.service import Scale


@strawberry.input
class ServiceScaleInput:
    min: int
    max: int
    target_requests_per_replica: float | None = strawberry.field(default=None, description="Default 1.")

    def to_scale(self) -> Scale:
        return Scale(self.min, self.max, self.target_requests_per_replica)


@strawberry.input
class DeployModelInput:
    model_id: strawberry.ID
    request: ResourceRequestInput = strawberry.field(
        description="Per replica; `maxDurationMinutes` is a replica's lifetime (it is replaced when it ends)."
    )
    name: str | None = None
    center_id: strawberry.ID | None = strawberry.field(default=None, description="Absent: placed by `policy`, like a job.")
    policy: PlacementPolicy = PlacementPolicy.CHEAPEST
    scale: ServiceScaleInput | None = None
    command: list[str] | None = strawberry.field(
        default=None,
        description="The serving command, an argv list; {port} and {model_dir} are filled in. Absent: the model's own, or the built-in ONNX runner.",
    )
    protocol: ServiceProtocol = ServiceProtocol.INVOKE
    idempotent: bool = strawberry.field(default=False, description="Retry a request once on another replica when its replica fails.")
    deadline_seconds: float = strawberry.field(default=30.0, description="How long one request may take (SERVICE_TIMEOUT after).")
    idempotency_key: str | None = None
    client_mutation_id: str | None = None


@strawberry.input
class ScaleServiceInput:
    service_id: strawberry.ID
    scale: ServiceScaleInput
    client_mutation_id: str | None = None


@strawberry.input
class StopServiceInput:
    service_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.input
class InvokeServiceInput:
    service_id: strawberry.ID
    input: JSON
    client_mutation_id: str | None = None


@strawberry.input
class ServiceFilter:
    states: list[ServiceState] | None = None
    model_ids: list[strawberry.ID] | None = None
    center_ids: list[strawberry.ID] | None = None

    def to_query(self, owner_id: int | None) -> ServiceQuery:
        return ServiceQuery(
            owner_id=owner_id,
            states=tuple(str(state) for state in self.states or ()),
            model_ids=tuple(key if (key := int_key(i, "Model")) is not None else -1 for i in self.model_ids or ()),
            center_ids=tuple(key if (key := int_key(i, "ComputeCenter")) is not None else -1 for i in self.center_ids or ()),
        )
