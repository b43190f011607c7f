"""Offers: every center's quote for a resource request, side by side, best first."""

from __future__ import annotations

import asyncio
from datetime import datetime

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter, ComputeUnit, Money
from graph.core.context import Context
from graph.core.errors import center_error
from graph.jobs.mutations import ResourceRequestInput
from graph.jobs.types import PlacementPolicy
from resolvers.common.errors import BadRequest, CenterFault
from resolvers.jobs.dispatch import Snapshot, busy_devices
from resolvers.jobs.ranking import rank
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.service import validate_resources
from store.types import utcnow


@strawberry.type(description="One center's quote for a resource request.")
class Offer:
    center: ComputeCenter
    compute_unit: ComputeUnit | None
    feasible: bool = strawberry.field(description="True when the center can start the job now.")
    reason: str | None = strawberry.field(
        description="Why not, when not feasible: starts with a code such as NOT_ENOUGH_FREE, NO_SUCH_DEVICE, OVER_QUOTA, CENTER_DOWN."
    )
    devices: int
    standard_units: float
    price_per_hour: Money | None
    max_cost: Money | None = strawberry.field(description="Price per hour times the requested maximum duration.")
    estimated_start: datetime | None
    score: float | None = strawberry.field(
        description="The placement policy's score (lower price or earlier start, or more local inputs, ranks first)."
    )


async def resolve_offers(info: Info[Context, None], request: ResourceRequestInput, policy: PlacementPolicy) -> list[Offer]:
    runtime = info.context.runtime
    need = ResourceRequest(
        max_duration_minutes=request.max_duration_minutes,
        accelerator=request.accelerator,
        devices=request.devices,
        standard_units=request.standard_units,
        cpus=request.cpus,
        memory_gb=request.memory_gb,
    )
    problems = validate_resources(need, runtime.registry)
    if problems:
        raise BadRequest("; ".join(problem.message for problem in problems), problems[0].code)
    centers = runtime.registry.all()
    loader = info.context.loaders.capacity
    answers = await asyncio.gather(*(loader.load(center.id) for center in centers), return_exceptions=True)
    for answer in answers:
        if isinstance(answer, CenterFault):
            info.context.partial_errors.append(center_error(answer, list(info.path.as_list())))
        elif isinstance(answer, BaseException):
            raise answer
    async with runtime.db.read() as session:
        busy = await busy_devices(session)
    snapshot = Snapshot(units={center.id: answer for center, answer in zip(centers, answers, strict=True)}, busy=busy, taken_at=utcnow())  # type: ignore[misc]
    quota_left = await runtime.dispatcher.quota_left(info.context.viewer.account_id)
    candidates = rank(runtime.dispatcher.offers(need, snapshot, quota_left, centers), policy.value, snapshot.taken_at)
    currency = runtime.registry.currency
    return [
        Offer(
            center=ComputeCenter.from_center(candidate.offer.center),
            compute_unit=ComputeUnit.from_info(candidate.offer.unit, currency) if candidate.offer.unit else None,
            feasible=candidate.offer.feasible,
            reason=candidate.offer.reason,
            devices=candidate.offer.devices,
            standard_units=candidate.offer.standard_units,
            price_per_hour=Money(amount=candidate.offer.price_per_hour, currency=currency)
            if candidate.offer.price_per_hour is not None
            else None,
            max_cost=Money(amount=candidate.offer.max_cost, currency=currency) if candidate.offer.max_cost is not None else None,
            estimated_start=candidate.offer.estimated_start,
            score=candidate.score if candidate.score not in (None, float("inf")) else None,
        )
        for candidate in candidates
    ]
