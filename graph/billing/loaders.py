"""The billing loaders of a request: one query per kind of lookup per batch, scoped to the viewer."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from graph.billing.types import Bill, UsageRecord
from graph.core.batching import complete, grouped, keyed, nodes
from graph.core.services import Services
from resolvers.access.viewer import Viewer
from resolvers.billing.budgets import AlertRecord
from resolvers.billing.records import BillRow
from resolvers.billing.service import Balance


class BillingLoaders:
    def __init__(self, services: Services, viewer: Viewer) -> None:
        reads, scope = services.billing_reads, viewer.scope
        self.usage: DataLoader[int, UsageRecord | None] = nodes(lambda ids: reads.usage_by_ids(ids, scope), UsageRecord.from_row)
        self.usage_by_job: DataLoader[int, UsageRecord | None] = nodes(lambda ids: reads.usage_by_jobs(ids, scope), UsageRecord.from_row)
        self.bill: DataLoader[int, Bill | None] = nodes(lambda ids: reads.bills_by_ids(ids, scope), Bill.from_row)
        self.balance: DataLoader[int, Balance] = complete(reads.balances)
        self.month_alerts: DataLoader[int, list[AlertRecord]] = grouped(reads.month_alerts, [])
        self.month_bill: DataLoader[int, BillRow | None] = keyed(reads.month_bills)
