"""Balances, usage records, bills and bill lines.

Every write for an account happens under ``lock_account``: bills are created, lines
added, totals and balances changed only by its holder, so an account's money moves one
transaction at a time on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.billing_tables import BalanceEntryRow, BillingAccountRow, BillLineRow, BillRow, UsageRecordRow
from store.paging import Page, count_rows, keyset_page
from store.states import TERMINAL_STATES
from store.tables import CenterRow, JobRow
from store.types import utcnow

ZERO = Decimal("0.000000")


def _owned(statement: Select[Any], column: Any, owner_id: int | None) -> Select[Any]:
    return statement if owner_id is None else statement.where(column == owner_id)


# ---------------------------------------------------------------------- balances and holds


#: every submit and every job's end locks its account: the statement is built once
_BUMP_LOCK_VERSION = (
    update(BillingAccountRow)
    .where(BillingAccountRow.account_id == bindparam("locked_account_id"))
    .values(lock_version=BillingAccountRow.lock_version + 1, updated_at=bindparam("locked_at", type_=BillingAccountRow.updated_at.type))
    .returning(BillingAccountRow)
    .execution_options(synchronize_session=False, populate_existing=True)
)


_ACCOUNTS = cast(Table, BillingAccountRow.__table__)
#: a submit's check of what the account can hold, under the same lock: on the table, returning
#: only the terms it reads (the ORM-enabled UPDATE loading a whole row was a submit's dearest statement)
_LOCK_FOR_TERMS = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.account_id == bindparam("locked_account_id"))
    .values(lock_version=_ACCOUNTS.c.lock_version + 1, updated_at=bindparam("locked_at", type_=_ACCOUNTS.c.updated_at.type))
    .returning(
        _ACCOUNTS.c.balance,
        _ACCOUNTS.c.held,
        _ACCOUNTS.c.currency,
        _ACCOUNTS.c.low_balance_threshold,
        _ACCOUNTS.c.budget_hard,
        _ACCOUNTS.c.monthly_budget,
    )
)


@dataclass(frozen=True)
class AccountTerms:
    """What an account holds and may spend, as its lock read it."""

    balance: Decimal
    held: Decimal
    currency: str
    low_balance_threshold: Decimal | None
    budget_hard: bool
    monthly_budget: Decimal | None


async def lock_account(session: AsyncSession, account_id: int, *, currency: str, opening_balance: Decimal) -> BillingAccountRow:
    """The account's billing row, created with ``opening_balance`` on first use, locked
    for the rest of the transaction (the UPDATE takes PostgreSQL's row lock and SQLite's
    write lock alike, so the reads that follow are consistent). One statement: the UPDATE
    returns the row it locked."""
    bump = {"locked_account_id": account_id, "locked_at": utcnow()}
    locked = (await session.scalars(_BUMP_LOCK_VERSION, bump)).first()
    if locked is not None:
        return locked
    await _open_account(session, account_id, currency=currency, opening_balance=opening_balance)
    row = (await session.scalars(_BUMP_LOCK_VERSION, bump)).first()
    assert row is not None
    return row


async def lock_account_terms(session: AsyncSession, account_id: int, *, currency: str, opening_balance: Decimal) -> AccountTerms:
    """``lock_account`` for a caller that only reads the account's terms: the same lock, no ORM row."""
    bump = {"locked_account_id": account_id, "locked_at": utcnow()}
    locked = (await session.execute(_LOCK_FOR_TERMS, bump)).first()
    if locked is None:
        await _open_account(session, account_id, currency=currency, opening_balance=opening_balance)
        locked = (await session.execute(_LOCK_FOR_TERMS, bump)).one()
    return AccountTerms(**locked._mapping)


async def _open_account(session: AsyncSession, account_id: int, *, currency: str, opening_balance: Decimal) -> None:
    """The account's billing row on its first use; a concurrent first use may insert it too."""
    now = utcnow()
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(BillingAccountRow)
        .values(
            account_id=account_id,
            currency=currency,
            opening_balance=opening_balance,
            balance=opening_balance,
            held=_held_by_jobs(account_id),
            lock_version=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["account_id"])
    )


async def billing_accounts_by_ids(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, BillingAccountRow]:
    rows = await session.scalars(select(BillingAccountRow).where(BillingAccountRow.account_id.in_(account_ids)))
    return {row.account_id: row for row in rows}


def _held_by_jobs(account_id: int) -> Any:
    """What the account's unfinished jobs hold, summed over them (the triggers keep ``held`` equal to it)."""
    return (
        select(func.coalesce(func.sum(JobRow.hold_amount), 0))
        .where(JobRow.owner_id == account_id, JobRow.state.not_in(TERMINAL_STATES), JobRow.hold_amount.is_not(None))
        .scalar_subquery()
    )


async def active_holds(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, Decimal]:
    """What the accounts' unfinished jobs hold (a job's hold ends with the job): the ``held``
    the triggers keep, read now (after the session's pending writes, which may change it)."""
    rows = await session.execute(
        select(BillingAccountRow.account_id, BillingAccountRow.held).where(BillingAccountRow.account_id.in_(account_ids))
    )
    found: dict[int, Decimal] = {account_id: held for account_id, held in rows}
    missing = [account_id for account_id in account_ids if account_id not in found]
    if missing:  # never billed: no row keeps their total (jobs only hold once reserve made it)
        sums = await session.execute(
            select(JobRow.owner_id, func.sum(JobRow.hold_amount))
            .where(JobRow.owner_id.in_(missing), JobRow.state.not_in(TERMINAL_STATES), JobRow.hold_amount.is_not(None))
            .group_by(JobRow.owner_id)
        )
        found.update({owner_id: total for owner_id, total in sums if total is not None})
    return {account_id: found.get(account_id) or ZERO for account_id in account_ids}


async def summed_holds(session: AsyncSession, account_id: int) -> Decimal:
    """The account's holds summed over its jobs, as ``held`` must equal (for checks, not for the hot path)."""
    total = await session.scalar(select(_held_by_jobs(account_id)))
    return total if total is not None else ZERO


def charge(account: BillingAccountRow, amount: Decimal) -> None:
    """Take ``amount`` from the balance (a negative amount gives it back); caller holds the lock."""
    account.balance = account.balance - amount


# ---------------------------------------------------------------------- the balance history


def add_balance_entry(
    session: AsyncSession, account: BillingAccountRow, *, kind: str, amount: Decimal, description: str, reference: str | None = None
) -> BalanceEntryRow:
    """Record that the balance moved by ``amount`` (already applied to ``account``); caller holds the lock."""
    entry = BalanceEntryRow(
        account_id=account.account_id,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        reference=reference,
        description=description,
        created_at=utcnow(),
    )
    session.add(entry)
    return entry


async def entry_by_reference(session: AsyncSession, account_id: int, reference: str) -> BalanceEntryRow | None:
    return await session.scalar(
        select(BalanceEntryRow).where(BalanceEntryRow.account_id == account_id, BalanceEntryRow.reference == reference)
    )


async def balance_entries_page(session: AsyncSession, account_id: int, *, first: int, after: int | None) -> Page[BalanceEntryRow]:
    """Newest first, by keyset on (account_id, id)."""
    statement = select(BalanceEntryRow).where(BalanceEntryRow.account_id == account_id)
    return await keyset_page(session, statement, BalanceEntryRow.id, first=first, after=after)


async def count_balance_entries(session: AsyncSession, account_id: int) -> int:
    return await count_rows(session, select(BalanceEntryRow).where(BalanceEntryRow.account_id == account_id))


# ---------------------------------------------------------------------- bills and lines


async def find_bill(session: AsyncSession, account_id: int, period: str) -> BillRow | None:
    return await session.scalar(select(BillRow).where(BillRow.account_id == account_id, BillRow.period == period))


async def bills_for_period(session: AsyncSession, account_ids: Sequence[int], period: str) -> dict[int, BillRow]:
    rows = await session.scalars(select(BillRow).where(BillRow.account_id.in_(account_ids), BillRow.period == period))
    return {row.account_id: row for row in rows}


def new_bill(session: AsyncSession, account_id: int, period: str, start: Any, end: Any, currency: str) -> BillRow:
    bill = BillRow(
        account_id=account_id,
        period=period,
        period_start=start,
        period_end=end,
        status="OPEN",
        currency=currency,
        total=ZERO,
        line_count=0,
    )
    session.add(bill)
    return bill


async def add_line(
    session: AsyncSession,
    bill: BillRow,
    *,
    kind: str,
    amount: Decimal,
    description: str,
    usage_id: int | None = None,
    corrects_bill_id: int | None = None,
    service_id: int | None = None,
    tokens: int | None = None,
) -> BillLineRow:
    """Append a line to an OPEN bill and add it to the bill's total, in the caller's transaction."""
    if bill.status != "OPEN":
        raise ValueError(f"bill {bill.id} is {bill.status}; lines go on an OPEN bill")
    line = BillLineRow(
        bill_id=bill.id,
        kind=kind,
        usage_id=usage_id,
        corrects_bill_id=corrects_bill_id,
        description=description,
        amount=amount,
        service_id=service_id,
        tokens=tokens,
    )
    session.add(line)
    await session.flush()
    await session.execute(
        update(BillRow)
        .where(BillRow.id == bill.id)
        .values(total=BillRow.total + amount, line_count=BillRow.line_count + 1)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(bill, ["total", "line_count"])
    return line


def finalize(bill: BillRow) -> None:
    bill.status = "FINALIZED"
    bill.finalized_at = utcnow()


async def bills_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None = None) -> dict[int, BillRow]:
    statement = _owned(select(BillRow).where(BillRow.id.in_(ids)), BillRow.account_id, owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def bills_page(session: AsyncSession, owner_id: int | None, *, first: int, after: int | None) -> Page[BillRow]:
    return await keyset_page(session, _owned(select(BillRow), BillRow.account_id, owner_id), BillRow.id, first=first, after=after)


async def count_bills(session: AsyncSession, owner_id: int | None) -> int:
    return await count_rows(session, _owned(select(BillRow), BillRow.account_id, owner_id))


async def lines_page(session: AsyncSession, bill_id: int, *, first: int, after: int | None) -> Page[BillLineRow]:
    """Oldest first, by keyset on (bill_id, id): the same cost for every page."""
    statement = select(BillLineRow).where(BillLineRow.bill_id == bill_id)
    return await keyset_page(session, statement, BillLineRow.id, first=first, after=after, descending=False)


async def lines_total(session: AsyncSession, bill_id: int) -> Decimal:
    """The bill's total as the database adds up its lines (the stored total must equal it)."""
    total = await session.scalar(select(func.sum(BillLineRow.amount)).where(BillLineRow.bill_id == bill_id))
    return total if total is not None else ZERO


@dataclass(frozen=True)
class ExportLine:
    line: BillLineRow
    usage: UsageRecordRow | None
    job: JobRow | None
    center: CenterRow | None


async def export_lines(session: AsyncSession, bill_id: int, *, after: int, limit: int) -> list[ExportLine]:
    """Lines with what a cost export names (usage, job, center), one keyset page at a time."""
    rows = await session.execute(
        select(BillLineRow, UsageRecordRow, JobRow, CenterRow)
        .outerjoin(UsageRecordRow, UsageRecordRow.id == BillLineRow.usage_id)
        .outerjoin(JobRow, JobRow.id == UsageRecordRow.job_id)
        .outerjoin(CenterRow, CenterRow.id == UsageRecordRow.center_id)
        .where(BillLineRow.bill_id == bill_id, BillLineRow.id > after)
        .order_by(BillLineRow.id)
        .limit(limit)
    )
    return [ExportLine(line, usage, job, center) for line, usage, job, center in rows]


# ---------------------------------------------------------------------- usage records


def add_usage(session: AsyncSession, **fields: Any) -> UsageRecordRow:
    usage = UsageRecordRow(**fields)
    session.add(usage)
    return usage


async def usage_by_jobs(session: AsyncSession, job_ids: Sequence[int], owner_id: int | None = None) -> dict[int, UsageRecordRow]:
    statement = _owned(select(UsageRecordRow).where(UsageRecordRow.job_id.in_(job_ids)), UsageRecordRow.account_id, owner_id)
    return {row.job_id: row for row in await session.scalars(statement)}


async def usage_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None = None) -> dict[int, UsageRecordRow]:
    statement = _owned(select(UsageRecordRow).where(UsageRecordRow.id.in_(ids)), UsageRecordRow.account_id, owner_id)
    return {row.id: row for row in await session.scalars(statement)}
