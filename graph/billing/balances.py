"""An account's money in the graph: balance, holds, what is available, and this month's budget."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from strawberry.types import Info

from graph.billing.types import Budget, BudgetAlert
from graph.core.context import Context
from graph.core.money import Money


async def balance_of(info: Info[Context, None], account_key: int, part: Literal["balance", "holds", "available"]) -> Money:
    balance = await info.context.loaders.billing.balance.load(account_key)
    amounts = {"balance": balance.balance, "holds": balance.holds, "available": balance.available}
    return Money(amount=amounts[part], currency=balance.currency)


async def budget_of(info: Info[Context, None], account_key: int) -> Budget | None:
    loaders = info.context.loaders.billing
    balance = await loaders.balance.load(account_key)
    if balance.monthly_budget is None:
        return None
    bill = await loaders.month_bill.load(account_key)
    alerts = await loaders.month_alerts.load(account_key)
    spent = bill.total if bill is not None else Decimal("0.000000")
    return Budget(
        amount=Money(amount=balance.monthly_budget, currency=balance.currency),
        hard=balance.budget_hard,
        period=info.context.services.billing_reads.this_month(),
        spent=Money(amount=spent, currency=balance.currency),
        alerts=[BudgetAlert.from_record(record) for record in alerts],
    )


async def low_balance_threshold_of(info: Info[Context, None], account_key: int) -> Money | None:
    balance = await info.context.loaders.billing.balance.load(account_key)
    if balance.low_balance_threshold is None:
        return None
    return Money(amount=balance.low_balance_threshold, currency=balance.currency)
