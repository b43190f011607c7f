"""A billing harness for property and fault tests: the real ledger, meter and billing
service on a real database (a SQLite file or a PostgreSQL schema), without HTTP.

It submits jobs the way ``JobService.submit`` does (a hold checked under the account's
lock, in the transaction that writes the job) and ends them through the job ledger, so
everything that meters and bills is the production code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import func, select

from connectors.catalog import DEFAULT_CATALOG
from resolvers.billing.bills import BillBook, BillingPolicy
from resolvers.billing.metering import Meter
from resolvers.billing.periods import Calendar
from resolvers.billing.pricing import Quote, make_quote
from resolvers.billing.service import BillingService
from resolvers.jobs.ledger import Change, JobLedger
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.states import TERMINAL_STATES
from store.billing_tables import BillingAccountRow, BillLineRow, BillRow, UsageRecordRow
from store.bus import InMemoryBus
from store.centers import sync_centers
from store.db import Database
from store.tables import AccountRow, JobEventRow, JobRow
from tests.conftest import POSTGRES_URL, drop_schema


def exact_cost(units: Decimal, devices: int, seconds: int, price: Decimal) -> Decimal:
    """The oracle: the exact fraction, rounded half up to 6 places, without the decimal module's help."""
    value = Fraction(units) * devices * seconds * Fraction(price) / 3600
    scaled = value * 10**6
    rounded = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    return Decimal(rounded).scaleb(-6)


@dataclass
class Backend:
    url: str
    schema: str | None
    db: Database
    center_id: int

    async def second_database(self) -> Database:
        """Another gateway's handle on the same database (its own engine, its own locks)."""
        return Database(self.url, schema=self.schema)

    @classmethod
    async def open(cls, kind: str, directory: str) -> Backend:
        if kind == "sqlite":
            url, schema = f"sqlite+aiosqlite:///{directory}/billing.db", None
        else:
            url, schema = POSTGRES_URL, f"b_{uuid.uuid4().hex[:12]}"
        db = Database(url, schema=schema)
        await db.migrate()
        async with db.transaction() as session:
            (center,) = await sync_centers(session, [("local", "LOCAL", "Local", "test")])
        return cls(url, schema, db, center.id)

    async def close(self) -> None:
        await self.db.dispose()
        if self.schema:
            await drop_schema(self.url, self.schema)


class Billing:
    """One account's billing on a backend, with the opening balance of this scenario."""

    def __init__(self, backend: Backend, opening: Decimal, *, db: Database | None = None, calendar: Calendar | None = None) -> None:
        self.backend = backend
        self.db = db or backend.db
        book = BillBook(BillingPolicy("CNY", opening, calendar or Calendar("UTC")))
        self.bus = InMemoryBus()
        self.service = BillingService(self.db, self.bus, book, DEFAULT_CATALOG)
        self.ledger = JobLedger(self.db, self.bus, meter=Meter(book))
        self.account_id = 0
        self.account_name = ""

    async def new_account(self) -> int:
        self.account_name = f"acct-{uuid.uuid4().hex[:10]}"
        async with self.db.transaction() as session:
            account = AccountRow(name=self.account_name)
            session.add(account)
            await session.flush()
            self.account_id = account.id
        return self.account_id

    async def submit(self, quote: Quote, max_minutes: float, name: str = "job") -> int | None:
        """The job's id, or None when its hold did not fit (nothing is written then)."""
        async with self.db.transaction() as session:
            if await self.service.reserve(session, self.account_id, quote.hold) is not None:
                return None
            job = JobRow(
                owner_id=self.account_id,
                reference=f"aicn-{uuid.uuid4().hex[:12]}",
                name=name,
                kind="BATCH",
                state="PENDING",
                center_id=self.backend.center_id,
                request=ResourceRequest(max_duration_minutes=max_minutes, accelerator="x", devices=quote.devices),
                command=["true"],
                progress_count=0,
                last_seq=0,
                **quote.job_columns(),
            )
            session.add(job)
            await session.flush()
            return job.id

    async def start(self, job_id: int, at: datetime, ledger: JobLedger | None = None) -> None:
        def planner(job: JobRow) -> Change:
            change = Change()
            if job.state in TERMINAL_STATES or job.started_at is not None:
                return change
            change.columns["started_at"] = at
            change.state("STARTING", at=at)
            change.state("RUNNING", at=at)
            return change

        await (ledger or self.ledger).apply(job_id, planner)

    async def end(self, job_id: int, state: str, at: datetime, ledger: JobLedger | None = None) -> None:
        def planner(job: JobRow) -> Change:
            change = Change()
            if job.state in TERMINAL_STATES:
                return change
            change.columns["finished_at"] = at
            if state != "SUCCEEDED":
                change.columns["failure_reason"] = f"{state}: test"
            change.state(state, at=at)
            return change

        await (ledger or self.ledger).apply(job_id, planner)

    # ------------------------------------------------------------------ what the database says

    async def balance_and_bills(self, opening: Decimal) -> tuple[Decimal, list[BillRow]]:
        async with self.db.read() as session:
            account = await session.get(BillingAccountRow, self.account_id, populate_existing=True)
            bills = await session.scalars(
                select(BillRow).where(BillRow.account_id == self.account_id).order_by(BillRow.id).execution_options(populate_existing=True)
            )
            return (account.balance if account else opening), list(bills)

    async def snapshot(self) -> Snapshot:
        async with self.db.read() as session:
            account = await session.get(BillingAccountRow, self.account_id, populate_existing=True)
            jobs = list(
                await session.scalars(select(JobRow).where(JobRow.owner_id == self.account_id).execution_options(populate_existing=True))
            )
            usages = list(await session.scalars(select(UsageRecordRow).where(UsageRecordRow.account_id == self.account_id)))
            bills = list(
                await session.scalars(
                    select(BillRow).where(BillRow.account_id == self.account_id).execution_options(populate_existing=True)
                )
            )
            bill_ids = [bill.id for bill in bills]
            lines = list(await session.scalars(select(BillLineRow).where(BillLineRow.bill_id.in_(bill_ids)))) if bill_ids else []
            sums = (
                dict(
                    (
                        await session.execute(
                            select(BillLineRow.bill_id, func.sum(BillLineRow.amount))
                            .where(BillLineRow.bill_id.in_(bill_ids))
                            .group_by(BillLineRow.bill_id)
                        )
                    ).all()
                )
                if bill_ids
                else {}
            )
            job_ids = [job.id for job in jobs]
            events = (
                list(
                    await session.scalars(
                        select(JobEventRow).where(JobEventRow.job_id.in_(job_ids)).order_by(JobEventRow.job_id, JobEventRow.seq)
                    )
                )
                if job_ids
                else []
            )
            twice = (await session.execute(select(UsageRecordRow.job_id).group_by(UsageRecordRow.job_id).having(func.count() > 1))).all()
        return Snapshot(account, jobs, usages, bills, lines, sums, events, [row[0] for row in twice])


@dataclass
class Snapshot:
    account: BillingAccountRow | None
    jobs: list[JobRow]
    usages: list[UsageRecordRow]
    bills: list[BillRow]
    lines: list[BillLineRow]
    database_sums: dict[int, Decimal]
    events: list[JobEventRow]
    jobs_with_two_records: list[int]

    def events_of(self, job_id: int) -> list[JobEventRow]:
        return [event for event in self.events if event.job_id == job_id]


def quote_for(price: Decimal, units: str, devices: int, max_minutes: float) -> Quote:
    return make_quote(price, "CNY", Decimal(units), devices, max_minutes)


def later(instant: datetime, seconds: float) -> datetime:
    return instant + timedelta(seconds=seconds)


__all__ = ["Backend", "Billing", "Snapshot", "exact_cost", "later", "quote_for"]
