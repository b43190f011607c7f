"""Billing: quotes and holds at submission, balances, finalizing and adjusting bills, budgets.

Metering itself is ``resolvers.billing.metering`` (called by the job ledger); the rules of where
lines go and how money moves are ``resolvers.billing.bills``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.catalog import Catalog
from resolvers.access.viewer import Viewer
from resolvers.billing.bills import BillBook, Notice
from resolvers.billing.pricing import Quote, make_quote
from resolvers.billing.storage import gb_months, storage_charge
from resolvers.centers.registry import Center
from resolvers.common.errors import UserErrorData
from resolvers.common.ids import int_key
from store import billing as billing_store
from store.billing_tables import BillingAccountRow, BillLineRow, BillRow
from store.bus import InMemoryBus
from store.db import Database
from store.tables import AccountRow
from store.types import utcnow

MAX_AMOUNT = Decimal("1e13")
MAX_DESCRIPTION = 500
MAX_REFERENCE = 200


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    holds: Decimal
    currency: str
    monthly_budget: Decimal | None
    budget_hard: bool = False
    low_balance_threshold: Decimal | None = None

    @property
    def available(self) -> Decimal:
        return self.balance - self.holds


@dataclass
class BillOutcome:
    bill: BillRow | None = None
    line: BillLineRow | None = None
    errors: list[UserErrorData] = field(default_factory=list)


@dataclass
class BudgetOutcome:
    account_id: int | None = None
    errors: list[UserErrorData] = field(default_factory=list)


def parse_amount(value: Decimal | str, *, allow_zero: bool = False, allow_negative: bool = True) -> Decimal | None:
    """An exact amount of at most 6 decimal places and below 10^13, or None."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT or amount != amount.quantize(Decimal("0.000001")):
        return None
    if (amount == 0 and not allow_zero) or (amount < 0 and not allow_negative):
        return None
    return amount.quantize(Decimal("0.000001"))


class BillingService:
    def __init__(self, db: Database, bus: InMemoryBus, book: BillBook, catalog: Catalog) -> None:
        self.db = db
        self.bus = bus
        self.book = book
        self.catalog = catalog
        #: what "now" is when deciding whether a month has ended (tests move it)
        self.clock: Callable[[], datetime] = utcnow
        #: the price of keeping 10^9 bytes for a month (a STORAGE line on each finalized bill)
        self.storage_price_per_gb_month = Decimal(0)

    @property
    def currency(self) -> str:
        return self.book.policy.currency

    # ------------------------------------------------------------------ submission

    def quote(self, center: Center, accelerator: str, devices: int, max_minutes: float, unit_price: Decimal | None = None) -> Quote:
        """The terms for a job: ``unit_price`` as the center's compute unit priced it, else the configured price."""
        model = self.catalog.get(accelerator)
        units = model.standard_units if model is not None else 0.0
        price = unit_price if unit_price is not None else center.price_for(accelerator)
        return make_quote(price, self.currency, units, devices, max_minutes)

    async def reserve(
        self, session: AsyncSession, account_id: int, hold: Decimal, notices: list[Notice] | None = None
    ) -> UserErrorData | None:
        """Whether ``hold`` fits, checked under the account's lock: in what is available (above
        the account's low-balance threshold, if it has one) and under a hard budget. When it
        does, the caller writes the job carrying the hold in the same transaction. A refusal
        by the threshold records a LOW_BALANCE alert, whose news goes into ``notices``."""
        account = await self.book.lock_terms(session, account_id)
        held = account.held  # as the lock read it: no job of this transaction is written yet
        available = account.balance - held
        currency = account.currency
        if hold > available:
            return UserErrorData(
                f"the job may cost up to {hold} {currency}; the account has {available} {currency} available",
                "INSUFFICIENT_BALANCE",
                ("request",),
            )
        threshold = account.low_balance_threshold
        if threshold is not None and available - hold < threshold:
            found = await self.book.check_low_balance(session, await self.book.lock(session, account_id), hold)
            if notices is not None:
                notices.extend(found)
            return UserErrorData(
                f"the job may cost up to {hold} {currency}; the account has {available} {currency} available "
                f"and new jobs must leave at least {threshold} {currency} (its low-balance threshold)",
                "INSUFFICIENT_BALANCE",
                ("request",),
            )
        if account.budget_hard and account.monthly_budget is not None:
            bill = await billing_store.find_bill(session, account_id, self.book.policy.calendar.period_of(utcnow()).label)
            spent = bill.total if bill is not None else billing_store.ZERO
            if spent + held + hold > account.monthly_budget:
                return UserErrorData(
                    f"the job may cost up to {hold} {currency}; this month has spent {spent} and holds {held} {currency} "
                    f"of a hard budget of {account.monthly_budget} {currency}",
                    "BUDGET_EXCEEDED",
                    ("request",),
                )
        return None

    # ------------------------------------------------------------------ reads

    async def balances(self, session: AsyncSession, account_ids: Sequence[int]) -> dict[int, Balance]:
        rows = await billing_store.billing_accounts_by_ids(session, account_ids)
        unbilled = [account_id for account_id in account_ids if account_id not in rows]
        holds = await billing_store.active_holds(session, unbilled) if unbilled else {}
        holds.update({account_id: row.held for account_id, row in rows.items()})
        policy = self.book.policy
        answer: dict[int, Balance] = {}
        for account_id in account_ids:
            row = rows.get(account_id)
            if row is None:  # never billed yet: the opening balance it will get
                answer[account_id] = Balance(policy.opening_balance, holds[account_id], policy.currency, None)
            else:
                answer[account_id] = Balance(
                    row.balance, holds[account_id], row.currency, row.monthly_budget, row.budget_hard, row.low_balance_threshold
                )
        return answer

    # ------------------------------------------------------------------ bills

    def _period_ended(self, label: str) -> bool:
        """A month may be finalized once it is over; before, its usage would land on a later bill."""
        return self.book.policy.calendar.parse(label).end <= self.clock()

    async def finalize(self, viewer: Viewer, bill_id: str) -> BillOutcome:
        if not viewer.is_admin:
            return BillOutcome(errors=[_forbidden("finalize bills")])
        key = int_key(bill_id, "Bill")
        async with self.db.transaction() as session:
            bill, _ = await self._locked_bill(session, key)
            if bill is None:
                return BillOutcome(errors=[UserErrorData("no such bill", "BILL_NOT_FOUND", ("billId",))])
            if bill.status == "FINALIZED":
                return BillOutcome(bill=bill, errors=[UserErrorData("the bill is already finalized", "BILL_FINALIZED", ("billId",))])
            if not self._period_ended(bill.period):
                message = f"the month {bill.period} has not ended yet: its usage is still arriving"
                return BillOutcome(bill=bill, errors=[UserErrorData(message, "PERIOD_NOT_ENDED", ("billId",))])
            notices = await self._meter_storage(session, bill)
            billing_store.finalize(bill)
        await self.publish(notices)
        return BillOutcome(bill=bill)

    async def finalize_period(self, account_name: str, period_label: str) -> BillRow:
        """Finalize an account's bill for a month (creating it empty when there is none);
        for the operator's CLI. Finalizing a finalized bill changes nothing."""
        period = self.book.policy.calendar.parse(period_label)
        if not self._period_ended(period.label):
            raise ValueError(f"PERIOD_NOT_ENDED: the month {period.label} has not ended yet; finalize it once it has")
        notices: list[Notice] = []
        async with self.db.transaction() as session:
            account_id = await _account_id(session, account_name)
            await self.book.lock(session, account_id)
            bill = await billing_store.find_bill(session, account_id, period.label)
            if bill is None:
                bill = billing_store.new_bill(session, account_id, period.label, period.start, period.end, self.currency)
            if bill.status == "OPEN":
                await session.flush()
                notices = await self._meter_storage(session, bill)
                billing_store.finalize(bill)
            await session.flush()
        await self.publish(notices)
        return bill

    async def adjust(self, viewer: Viewer, bill_id: str, amount: Decimal | str, description: str) -> BillOutcome:
        """A correction of a bill: a line on it while it is OPEN, else on the next OPEN bill.
        A positive amount is a charge, a negative one a credit; either moves the balance."""
        if not viewer.is_admin:
            return BillOutcome(errors=[_forbidden("adjust bills")])
        errors: list[UserErrorData] = []
        exact = parse_amount(amount)
        if exact is None:
            errors.append(
                UserErrorData("amount must be a non-zero decimal with at most 6 places, below 10^13", "INVALID_AMOUNT", ("amount",))
            )
        text = description.strip()
        if not 0 < len(text) <= MAX_DESCRIPTION:
            errors.append(UserErrorData(f"description must be 1 to {MAX_DESCRIPTION} characters", "INVALID_DESCRIPTION", ("description",)))
        if errors or exact is None:
            return BillOutcome(errors=errors)
        notices: list[Notice] = []
        async with self.db.transaction() as session:
            bill, account = await self._locked_bill(session, int_key(bill_id, "Bill"))
            if bill is None or account is None:
                return BillOutcome(errors=[UserErrorData("no such bill", "BILL_NOT_FOUND", ("billId",))])
            target = bill
            if bill.status != "OPEN":
                following = self.book.policy.calendar.following(self.book.policy.calendar.parse(bill.period))
                target = await self.book.open_bill(session, bill.account_id, following, create_past=False)
            line, notices = await self.book.post(
                session, account, target, kind="ADJUSTMENT", amount=exact, description=text, corrects_bill_id=bill.id
            )
        await self.publish(notices)
        return BillOutcome(bill=target, line=line)

    async def adjust_account(self, account_name: str, amount: Decimal | str, description: str) -> BillOutcome:
        """An adjustment on the account's current OPEN bill, for the operator's CLI."""
        exact = parse_amount(amount)
        if exact is None or not description.strip():
            return BillOutcome(errors=[UserErrorData("a non-zero amount and a description are needed", "INVALID_AMOUNT", ("amount",))])
        async with self.db.transaction() as session:
            account_id = await _account_id(session, account_name)
            account = await self.book.lock(session, account_id)
            bill = await self.book.open_bill(session, account_id, self.book.policy.calendar.period_of(utcnow()))
            line, notices = await self.book.post(session, account, bill, kind="ADJUSTMENT", amount=exact, description=description.strip())
        await self.publish(notices)
        return BillOutcome(bill=bill, line=line)

    async def _meter_storage(self, session: AsyncSession, bill: BillRow) -> list[Notice]:
        """Post the month's STORAGE line (GB-months kept x the price) before the bill is closed."""
        if self.storage_price_per_gb_month <= 0:
            return []
        kept = await gb_months(session, bill.account_id, bill.period_start, bill.period_end)
        amount = storage_charge(kept, self.storage_price_per_gb_month)
        if amount == 0:
            return []
        account = await self.book.lock(session, bill.account_id)
        description = f"storage: {kept.normalize():f} GB-months at {self.storage_price_per_gb_month} per GB-month"
        _, notices = await self.book.post(session, account, bill, kind="STORAGE", amount=amount, description=description)
        return notices

    async def _locked_bill(self, session: AsyncSession, key: int | None) -> tuple[BillRow | None, BillingAccountRow | None]:
        """The bill and its account, re-read under the account's lock (so the status is current)."""
        bill = (await billing_store.bills_by_ids(session, [key])).get(key) if key is not None else None
        if bill is None:
            return None, None
        account = await self.book.lock(session, bill.account_id)
        await session.refresh(bill)
        return bill, account

    # ------------------------------------------------------------------ budgets

    async def set_budget(
        self, viewer: Viewer, amount: Decimal | str | None, account_id: str | None = None, *, hard: bool = False
    ) -> BudgetOutcome:
        """Set (or, with None, remove) an account's monthly budget; thresholds already
        crossed this month are announced at once. A ``hard`` budget also refuses submissions."""
        target = _target_account(viewer, account_id)
        if target is None:
            return BudgetOutcome(errors=[_no_account()])
        exact: Decimal | None = None
        if amount is not None:
            exact = parse_amount(amount, allow_negative=False)
            if exact is None:
                return BudgetOutcome(
                    errors=[UserErrorData("the budget must be a positive decimal with at most 6 places", "INVALID_AMOUNT", ("amount",))]
                )
        async with self.db.transaction() as session:
            if await session.get(AccountRow, target) is None:
                return BudgetOutcome(errors=[_no_account()])
            account = await self.book.lock(session, target)
            account.monthly_budget = exact
            account.budget_hard = hard and exact is not None
            await session.flush()
            current = self.book.policy.calendar.period_of(utcnow())
            bill = await billing_store.find_bill(session, target, current.label)
            notices = await self.book.check_budget(session, account, bill)
        await self.publish(notices)
        return BudgetOutcome(account_id=target)

    async def publish(self, notices: list[Notice]) -> None:
        """Announce what a committed transaction recorded (alerts)."""
        for channel, message in notices:
            await self.bus.publish(channel, message)

        # ------------------------------------------------------------------ money in

    async def top_up(self, viewer: Viewer, account_id: str, amount: Decimal | str, reference: str) -> BudgetOutcome:
        """Credit an account (administrators). ``reference`` makes it idempotent: the same
        reference with the same amount credits once; with another amount it is refused."""
        if not viewer.is_admin:
            return BudgetOutcome(errors=[_forbidden("top up accounts")])
        errors: list[UserErrorData] = []
        exact = parse_amount(amount, allow_negative=False)
        if exact is None:
            errors.append(
                UserErrorData("a top-up must be a positive decimal with at most 6 places, below 10^13", "INVALID_AMOUNT", ("amount",))
            )
        text = reference.strip()
        if not 0 < len(text) <= MAX_REFERENCE:
            errors.append(UserErrorData(f"reference must be 1 to {MAX_REFERENCE} characters", "INVALID_REFERENCE", ("reference",)))
        key = int_key(account_id, "Account")
        if errors or exact is None or key is None:
            return BudgetOutcome(errors=errors or [_no_account()])
        async with self.db.transaction() as session:
            if await session.get(AccountRow, key) is None:
                return BudgetOutcome(errors=[_no_account()])
            account = await self.book.lock(session, key)
            earlier = await billing_store.entry_by_reference(session, key, text)
            if earlier is not None:
                if earlier.kind == "TOP_UP" and earlier.amount == exact:
                    return BudgetOutcome(account_id=key)  # told twice: credited once
                message = f"the reference {text!r} was used for a top-up of {earlier.amount}; use a new reference for a new top-up"
                return BudgetOutcome(errors=[UserErrorData(message, "REFERENCE_REUSED", ("reference",))])
            account.balance = account.balance + exact
            billing_store.add_balance_entry(session, account, kind="TOP_UP", amount=exact, reference=text, description=f"top-up {text}")
            await session.flush()
        return BudgetOutcome(account_id=key)

    async def set_low_balance_threshold(self, viewer: Viewer, account_id: str, amount: Decimal | str | None) -> BudgetOutcome:
        """Set (or, with None, remove) the amount below which new submissions are refused (administrators)."""
        if not viewer.is_admin:
            return BudgetOutcome(errors=[_forbidden("set low-balance thresholds")])
        exact: Decimal | None = None
        if amount is not None:
            exact = parse_amount(amount, allow_zero=True, allow_negative=False)
            if exact is None:
                message = "the threshold must be a decimal of at least 0 with at most 6 places"
                return BudgetOutcome(errors=[UserErrorData(message, "INVALID_AMOUNT", ("amount",))])
        key = int_key(account_id, "Account")
        notices: list[Notice] = []
        async with self.db.transaction() as session:
            if key is None or await session.get(AccountRow, key) is None:
                return BudgetOutcome(errors=[_no_account()])
            account = await self.book.lock(session, key)
            account.low_balance_threshold = exact
            await session.flush()
            notices = await self.book.check_low_balance(session, account)
        await self.publish(notices)
        return BudgetOutcome(account_id=key)


def _target_account(viewer: Viewer, account_id: str | None) -> int | None:
    """The account a caller names (its own when absent); None when it may not act on it."""
    if account_id is None:
        return viewer.account_id
    key = int_key(account_id, "Account")
    if key is None or (key != viewer.account_id and not viewer.is_admin):
        return None
    return key


def _no_account() -> UserErrorData:
    return UserErrorData("no such account", "ACCOUNT_NOT_FOUND", ("accountId",))


def _forbidden(what: str) -> UserErrorData:
    return UserErrorData(f"only an administrator may {what}", "FORBIDDEN")


async def _account_id(session: AsyncSession, name: str) -> int:
    account_id = await session.scalar(select(AccountRow.id).where(AccountRow.name == name))
    if account_id is None:
        raise LookupError(f"no account named {name!r}")
    return int(account_id)
