"""The centers' live stream: a center whose health changed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter
from graph.core.context import Context


@strawberry.type
class CenterSubscription:
    @strawberry.subscription(description="A center whose status changed (went DOWN, DEGRADED, or came back UP).")
    async def center_status(self, info: Info[Context, None]) -> AsyncGenerator[ComputeCenter, None]:
        registry = info.context.services.centers
        async for center_id in info.context.services.job_streams.center_changes():
            center = registry.get(center_id)
            if center is not None:
                yield ComputeCenter.from_center(center)
