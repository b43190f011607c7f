"""The billing root field: the caller's bills."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.billing.lists import list_bills
from graph.billing.types import Bill
from graph.core.context import Context
from graph.core.relay import Connection


@strawberry.type
class BillingQuery:
    @strawberry.field(description="The caller's bills (an administrator's: every account's), newest first.")
    async def bills(self, info: Info[Context, None], first: int | None = None, after: str | None = None) -> Connection[Bill]:
        return await list_bills(info, first=first, after=after)
