"""The billing tables: balances, usage records, bills and their lines, budget alerts.

Money columns are ``Fixed(20, 6)``: exact on every backend (see ``store.types.Fixed``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import BigId, Fixed, UtcDateTime, utcnow

MONEY = Fixed(20, 6)
QUANTITY = Fixed(20, 9)


class BillingAccountRow(Base):
    """An account's prepaid money, and what its unfinished jobs hold.

    ``held`` is the sum of the ``hold_amount`` of the account's jobs that have not ended, kept
    by triggers on ``jobs`` (migration 0023) in the transaction that writes the job: code never
    writes it, and it cannot drift from the jobs. Read it fresh (``store.billing.active_holds``,
    or the row ``lock_account`` returns): a job written in this session changes it in the database.

    Every billing write of an account first bumps ``lock_version``: that UPDATE is the one
    per-account lock (a row lock on PostgreSQL, the write lock on SQLite).
    """

    __tablename__ = "billing_accounts"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(10))
    opening_balance: Mapped[Decimal] = mapped_column(MONEY)
    balance: Mapped[Decimal] = mapped_column(MONEY)
    monthly_budget: Mapped[Decimal | None] = mapped_column(MONEY)
    #: a hard budget refuses submissions whose hold would cross it; a soft one only alerts
    budget_hard: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: new submissions are refused while what is available (after their hold) is below this
    low_balance_threshold: Mapped[Decimal | None] = mapped_column(MONEY)
    held: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0), server_default="0")
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BillRow(Base):
    """One account's bill for one calendar month: OPEN, then FINALIZED (never changed again).

    ``total`` and ``line_count`` are kept in the transaction that adds each line.
    """

    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("account_id", "period", name="uq_bills_account_period"),
        Index("ix_bills_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[str] = mapped_column(String(7))  # "YYYY-MM" in the billing time zone
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10), default="OPEN")
    currency: Mapped[str] = mapped_column(String(10))
    total: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UsageRecordRow(Base):
    """What one job that ran used and cost; at most one per job, written with its end."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("job_id", name="uq_usage_records_job_id"),
        Index("ix_usage_records_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    center_id: Mapped[int] = mapped_column(ForeignKey("centers.id"))
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seconds: Mapped[int] = mapped_column(Integer)
    accelerator: Mapped[str] = mapped_column(String(100))
    devices: Mapped[int] = mapped_column(Integer)
    units_per_device: Mapped[Decimal] = mapped_column(QUANTITY)
    standard_unit_hours: Mapped[Decimal] = mapped_column(QUANTITY)
    unit_price: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    #: the inference service whose replica this was (migration 0010)
    service_id: Mapped[int | None] = mapped_column(BigId, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BillLineRow(Base):
    """One line of a bill: a usage record, or an adjustment (a correction, never an edit)."""

    __tablename__ = "bill_lines"
    __table_args__ = (
        UniqueConstraint("usage_id", name="uq_bill_lines_usage_id"),
        Index("ix_bill_lines_bill_id_id", "bill_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"))
    kind: Mapped[str] = mapped_column(String(20))  # USAGE ADJUSTMENT STORAGE
    usage_id: Mapped[int | None] = mapped_column(ForeignKey("usage_records.id"))
    corrects_bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"))
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    #: a TOKENS line's service and how many tokens it bills (migration 0018)
    service_id: Mapped[int | None] = mapped_column(BigId)
    tokens: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BudgetAlertRow(Base):
    """A budget threshold an account's month crossed; stored so it is announced only once."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "period", "threshold", name="uq_budget_alerts_account_period_threshold"),
        Index("ix_budget_alerts_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    #: BUDGET (``threshold`` percent of ``budget``) or LOW_BALANCE (``budget`` is the threshold,
    #: ``spent`` what was available; ``threshold`` is 0, so it is told once a month)
    kind: Mapped[str] = mapped_column(String(20), default="BUDGET", server_default="BUDGET")
    period: Mapped[str] = mapped_column(String(7))
    threshold: Mapped[int] = mapped_column(Integer)  # percent of the budget
    budget: Mapped[Decimal] = mapped_column(MONEY)
    spent: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BalanceEntryRow(Base):
    """One movement of an account's balance: a TOP_UP, a USAGE charge or an ADJUSTMENT.

    ``amount`` is signed as the balance moved (a charge is negative); ``balance_after`` is the
    balance once it moved. A top-up's ``reference`` is unique per account: the same reference
    twice credits once.
    """

    __tablename__ = "balance_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "reference", name="uq_balance_entries_account_reference"),
        Index("ix_balance_entries_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(20))  # TOP_UP USAGE ADJUSTMENT
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance_after: Mapped[Decimal] = mapped_column(MONEY)
    reference: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
