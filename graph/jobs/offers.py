"""Offers: every center's quote for a resource request, side by side, best first."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from connectors.base import CenterQuote
from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.context import Context
from graph.core.errors import center_error
from graph.core.money import Money
from graph.jobs.enums import PlacementPolicy
from graph.jobs.inputs import ResourceRequestInput
from resolvers.centers.registry import Center, ComputeUnitInfo
from resolvers.common.errors import BadRequest, CenterFault
from resolvers.jobs.offers import quote_request
from resolvers.jobs.service import validate_resources


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


@strawberry.type
class OfferQuery:
    @strawberry.field(description="Every center's quote for a resource request, asked concurrently, best first by `policy`.")
    async def offers(
        self, info: Info[Context, None], request: ResourceRequestInput, policy: PlacementPolicy = PlacementPolicy.CHEAPEST
    ) -> list[Offer]:
        services = info.context.services
        resources = request.to_request()
        problems = validate_resources(resources, services.centers)
        if problems:
            raise BadRequest("; ".join(problem.message for problem in problems), problems[0].code)
        registry = services.centers
        centers = registry.all()
        loader = info.context.loaders.capacity
        asked = quote_request(resources, policy.value)
        quotes: dict[int, CenterQuote] = {}

        async def ask(center: Center) -> list[ComputeUnitInfo]:
            if not center.connector.quotes_itself:
                return await loader.load(center.id)
            quote = await registry.quote_of(center, asked)  # a PEER prices the request itself: one round trip
            if quote is None:
                return await loader.load(center.id)
            quotes[center.id] = quote
            return registry.units_of_quote(center, quote)

        answers = await asyncio.gather(*(ask(center) for center in centers), return_exceptions=True)
        units: dict[int, list[ComputeUnitInfo] | CenterFault] = {}
        for center, answer in zip(centers, answers, strict=True):
            if isinstance(answer, CenterFault):
                info.context.partial_errors.append(center_error(answer, list(info.path.as_list())))
            elif isinstance(answer, BaseException):
                raise answer
            units[center.id] = answer
        candidates = await services.jobs.offers(info.context.viewer, resources, policy.value, units, quotes)
        currency = services.centers.currency

        def money(amount: Decimal | None) -> Money | None:
            return Money(amount=amount, currency=currency) if amount is not None else None

        return [
            Offer(
                center=ComputeCenter.from_center(candidate.offer.center),
                compute_unit=ComputeUnit.from_info(candidate.offer.unit, currency) if candidate.offer.unit else None,
                feasible=candidate.offer.feasible,
                reason=candidate.offer.reason,
                devices=candidate.offer.devices,
                standard_units=candidate.offer.standard_units,
                price_per_hour=money(candidate.offer.price_per_hour),
                max_cost=money(candidate.offer.max_cost),
                estimated_start=candidate.offer.estimated_start,
                score=candidate.score if candidate.score not in (None, float("inf")) else None,
            )
            for candidate in candidates
        ]
