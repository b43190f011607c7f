"""The billing live stream: budget thresholds crossed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from graph.billing.types import BudgetAlert
from graph.core.context import Context


@strawberry.type
class BillingSubscription:
    @strawberry.subscription(
        description="Budget thresholds crossed by the caller's accounts, live; with `after`, first those recorded after that `seq`."
    )
    async def budget_alerts(self, info: Info[Context, None], after: int | None = None) -> AsyncGenerator[BudgetAlert, None]:
        async for record in info.context.services.budget_alerts.alerts(info.context.viewer, after):
            info.context.refresh_loaders()
            yield BudgetAlert.from_record(record)
