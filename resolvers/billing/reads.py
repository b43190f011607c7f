"""What the face reads of billing: usage records, bills and their lines, balances, this month's budget."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from resolvers.billing.budgets import AlertRecord
from resolvers.billing.focus import focus_csv
from resolvers.billing.periods import Calendar
from resolvers.billing.service import Balance, BillingService
from resolvers.common.reading import Listing, Page, Reader
from store import billing as billing_store
from store import budgets as budget_store
from store.billing_tables import BalanceEntryRow, BillLineRow, BillRow, UsageRecordRow
from store.db import Database
from store.types import utcnow


class BillingReads(Reader):
    def __init__(self, db: Database, billing: BillingService) -> None:
        super().__init__(db)
        self.billing = billing

    @property
    def calendar(self) -> Calendar:
        return self.billing.book.policy.calendar

    @property
    def currency(self) -> str:
        return self.billing.currency

    def this_month(self) -> str:
        """The current billing period's label (YYYY-MM in the billing time zone)."""
        return self.calendar.period_of(utcnow()).label

    async def usage_by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, UsageRecordRow]:
        return await self.read(lambda session: billing_store.usage_by_ids(session, ids, scope))

    async def usage_by_jobs(self, job_ids: Sequence[int], scope: int | None) -> dict[int, UsageRecordRow]:
        return await self.read(lambda session: billing_store.usage_by_jobs(session, job_ids, scope))

    async def bills_by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, BillRow]:
        return await self.read(lambda session: billing_store.bills_by_ids(session, ids, scope))

    async def balances(self, account_ids: Sequence[int]) -> dict[int, Balance]:
        return await self.read(lambda session: self.billing.balances(session, account_ids))

    async def month_bills(self, account_ids: Sequence[int]) -> dict[int, BillRow]:
        period = self.this_month()
        return await self.read(lambda session: billing_store.bills_for_period(session, account_ids, period))

    async def month_alerts(self, account_ids: Sequence[int]) -> dict[int, list[AlertRecord]]:
        period = self.this_month()
        rows = await self.read(lambda session: budget_store.alerts_by_accounts(session, account_ids, period))
        return {account_id: [AlertRecord.from_row(row) for row in alerts] for account_id, alerts in rows.items()}

    async def bills(self, scope: int | None, *, first: int, after: int | None) -> Listing[BillRow]:
        return await self.listing(
            lambda session: billing_store.bills_page(session, scope, first=first, after=after),
            lambda session: billing_store.count_bills(session, scope),
        )

    async def lines(self, bill: BillRow, *, first: int, after: int | None) -> Page[BillLineRow]:
        """A bill's lines, oldest first (keyset paging: every page costs the same)."""
        return await self.read(lambda session: billing_store.lines_page(session, bill.id, first=first, after=after))

    async def balance_entries(self, account_id: int, *, first: int, after: int | None) -> Listing[BalanceEntryRow]:
        """How an account's balance moved (top-ups, charges, adjustments), newest first."""
        return await self.listing(
            lambda session: billing_store.balance_entries_page(session, account_id, first=first, after=after),
            lambda session: billing_store.count_balance_entries(session, account_id),
        )

    def focus_csv(self, bill: BillRow) -> AsyncIterator[str]:
        """The bill as a FinOps FOCUS CSV, streamed a page of lines at a time."""
        return focus_csv(self.db, bill)
