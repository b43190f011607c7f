"""DataLoaders for billing: one query per kind of lookup per batch, scoped to the viewer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.dataloader import DataLoader

from resolvers.access.viewer import Viewer
from resolvers.billing.service import Balance
from store import billing as billing_store
from store import budgets as budget_store
from store.billing_tables import BillRow, BudgetAlertRow, UsageRecordRow
from store.types import utcnow

if TYPE_CHECKING:
    from aicn.runtime import Runtime

K = TypeVar("K")
V = TypeVar("V")


class BillingLoaders:
    def __init__(self, runtime: Runtime, viewer: Viewer) -> None:
        db = runtime.db
        scope = viewer.scope
        billing = runtime.billing

        def batch(fetch: Callable[[Any, list[K]], Awaitable[dict[K, V]]], empty: Any = None) -> DataLoader[K, Any]:
            async def load(keys: list[K]) -> list[Any]:
                async with db.read() as session:
                    found = await fetch(session, keys)
                return [found.get(key, empty) for key in keys]

            return DataLoader(load_fn=load)

        def this_month() -> str:
            return billing.book.policy.calendar.period_of(utcnow()).label

        def month_alerts(session: Any, account_ids: Sequence[int]) -> Awaitable[dict[int, list[BudgetAlertRow]]]:
            return budget_store.alerts_by_accounts(session, account_ids, this_month())

        def month_bills(session: Any, account_ids: Sequence[int]) -> Awaitable[dict[int, BillRow]]:
            return billing_store.bills_for_period(session, account_ids, this_month())

        self.usage: DataLoader[int, UsageRecordRow | None] = batch(lambda s, ids: billing_store.usage_by_ids(s, ids, scope))
        self.usage_by_job: DataLoader[int, UsageRecordRow | None] = batch(lambda s, ids: billing_store.usage_by_jobs(s, ids, scope))
        self.bill: DataLoader[int, BillRow | None] = batch(lambda s, ids: billing_store.bills_by_ids(s, ids, scope))
        self.balance: DataLoader[int, Balance] = batch(billing.balances)
        self.month_alerts: DataLoader[int, list[BudgetAlertRow]] = batch(month_alerts, [])
        self.month_bill: DataLoader[int, BillRow | None] = batch(month_bills)
