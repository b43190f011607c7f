"""The bill book: which bill a line goes on, and posting lines.

Posting a line is the one way money moves: it lands on an OPEN bill (adding to its
total), is taken from the account's balance, and may cross a budget threshold, all in
the caller's transaction and under the account's lock. A FINALIZED bill never changes;
what would have gone on it goes on the next OPEN bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.billing.budgets import CHANNEL, LOW_BALANCE_THRESHOLD, AlertRecord, thresholds_crossed
from resolvers.billing.periods import BillingPeriod, Calendar
from resolvers.common.ids import to_global_id
from resolvers.webhooks.events import EventKind
from resolvers.webhooks.outbox import enqueue_event
from store import billing as billing_store
from store import budgets as budget_store
from store.billing import AccountTerms
from store.billing_tables import BillingAccountRow, BillLineRow, BillRow, BudgetAlertRow
from store.types import utcnow

#: how many months ahead a line may be pushed past finalized bills before this is an error
MAX_MONTHS_AHEAD = 1200

Notice = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class BillingPolicy:
    currency: str
    opening_balance: Decimal
    calendar: Calendar


class BillBook:
    def __init__(self, policy: BillingPolicy) -> None:
        self.policy = policy

    async def lock(self, session: AsyncSession, account_id: int) -> BillingAccountRow:
        return await billing_store.lock_account(
            session, account_id, currency=self.policy.currency, opening_balance=self.policy.opening_balance
        )

    async def lock_terms(self, session: AsyncSession, account_id: int) -> AccountTerms:
        """``lock`` for a caller that reads only what the account holds and may spend."""
        return await billing_store.lock_account_terms(
            session, account_id, currency=self.policy.currency, opening_balance=self.policy.opening_balance
        )

    async def open_bill(self, session: AsyncSession, account_id: int, period: BillingPeriod, *, create_past: bool = True) -> BillRow:
        """The first OPEN bill from ``period`` on, created when missing. With ``create_past``
        False, months before the current one get no new bill (they are skipped)."""
        current = self.policy.calendar.period_of(utcnow())
        for _ in range(MAX_MONTHS_AHEAD):
            bill = await billing_store.find_bill(session, account_id, period.label)
            if bill is not None and bill.status == "OPEN":
                return bill
            if bill is None and (create_past or period.start >= current.start):
                bill = billing_store.new_bill(session, account_id, period.label, period.start, period.end, self.policy.currency)
                await session.flush()
                return bill
            period = self.policy.calendar.following(period)
        raise RuntimeError(f"no OPEN bill within {MAX_MONTHS_AHEAD} months for account {account_id}")

    async def post(
        self,
        session: AsyncSession,
        account: BillingAccountRow,
        bill: BillRow,
        *,
        kind: str,
        amount: Decimal,
        description: str,
        usage_id: int | None = None,
        corrects_bill_id: int | None = None,
        service_id: int | None = None,
        tokens: int | None = None,
    ) -> tuple[BillLineRow, list[Notice]]:
        line = await billing_store.add_line(
            session,
            bill,
            kind=kind,
            amount=amount,
            description=description,
            usage_id=usage_id,
            corrects_bill_id=corrects_bill_id,
            service_id=service_id,
            tokens=tokens,
        )
        billing_store.charge(account, amount)
        billing_store.add_balance_entry(session, account, kind=kind, amount=-amount, description=description)
        notices = await self.check_budget(session, account, bill)
        return line, notices + await self.check_low_balance(session, account)

    async def check_low_balance(self, session: AsyncSession, account: BillingAccountRow, hold: Decimal = Decimal(0)) -> list[Notice]:
        """Record a LOW_BALANCE alert when what is available (less ``hold``) is below the
        account's threshold and none was told this month; its news to publish."""
        threshold = account.low_balance_threshold
        if threshold is None:
            return []
        held = (await billing_store.active_holds(session, [account.account_id]))[account.account_id]
        available = account.balance - held - hold
        if available >= threshold:
            return []
        period = self.policy.calendar.period_of(utcnow()).label
        if LOW_BALANCE_THRESHOLD in await budget_store.thresholds_reached(session, account.account_id, period):
            return []
        row = budget_store.add_alert(
            session, account.account_id, period, LOW_BALANCE_THRESHOLD, threshold, available, account.currency, kind="LOW_BALANCE"
        )
        await session.flush()
        return await _announce(session, row)

    async def check_budget(self, session: AsyncSession, account: BillingAccountRow, bill: BillRow | None) -> list[Notice]:
        """Record the thresholds the month of ``bill`` has newly crossed; their news to publish."""
        if bill is None or account.monthly_budget is None:
            return []
        reached = await budget_store.thresholds_reached(session, account.account_id, bill.period)
        rows = [
            budget_store.add_alert(session, account.account_id, bill.period, threshold, account.monthly_budget, bill.total, bill.currency)
            for threshold in thresholds_crossed(bill.total, account.monthly_budget, reached)
        ]
        if not rows:
            return []
        await session.flush()
        notices: list[Notice] = []
        for row in rows:
            notices.extend(await _announce(session, row))
        return notices


async def _announce(session: AsyncSession, row: BudgetAlertRow) -> list[Notice]:
    """An alert's news for budgetAlerts subscribers, and its webhook deliveries (in the caller's transaction)."""
    record = AlertRecord.from_row(row)
    return [(CHANNEL, record.to_message()), *await enqueue_event(session, row.account_id, EventKind.BUDGET_ALERT, budget_alert(record))]


def budget_alert(record: AlertRecord) -> dict[str, Any]:
    """The data of a BUDGET_ALERT webhook event."""
    return {
        "accountId": to_global_id("Account", record.account_id),
        "kind": record.kind,  # BUDGET, or LOW_BALANCE (budget: the threshold; spent: what was available)
        "period": record.period,
        "threshold": record.threshold,
        "budget": str(record.budget),
        "spent": str(record.spent),
        "currency": record.currency,
        "at": record.at.isoformat(),
    }
