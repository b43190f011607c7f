"""``billing_accounts.held``, the running total of what an account's unfinished jobs hold, kept
by triggers on ``jobs``: it must equal SUM(hold_amount) over those jobs after anything that
writes a job (submit, a lowered or raised hold, every end, a delete, a raw INSERT), under
concurrent submits and ends from two gateways' engines, and after the migration that made it."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from resolvers.jobs.ledger import Change
from resolvers.jobs.resources import ResourceRequest
from store import billing as billing_store
from store.billing_tables import BillingAccountRow
from store.centers import sync_centers
from store.db import Database, alembic_config
from store.tables import AccountRow, JobRow
from store.types import utcnow
from tests.billing_harness import Backend, Billing, later, quote_for
from tests.conftest import POSTGRES_URL, DatabaseChoice, drop_schema, require_service

pytestmark = pytest.mark.both_databases

PRICE = Decimal("2.50")


@pytest.fixture
async def backend(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[Backend]:
    opened = await Backend.open("sqlite" if (database.url or "").startswith("sqlite") else "postgres", str(tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


async def totals(db: Database, account_id: int) -> tuple[Decimal, Decimal]:
    """(the kept total, the sum over the jobs)."""
    async with db.read() as session:
        held = await session.scalar(select(BillingAccountRow.held).where(BillingAccountRow.account_id == account_id))
        summed = await billing_store.summed_holds(session, account_id)
    assert held is not None
    return held, summed


async def test_the_total_follows_every_way_a_job_changes(backend: Backend) -> None:
    billing = Billing(backend, Decimal("10000"))
    account = await billing.new_account()
    quote = quote_for(PRICE, "1", 1, 60)
    jobs = [await billing.submit(quote, 60, name=f"job-{n}") for n in range(6)]
    assert all(job is not None for job in jobs)
    ids = [job for job in jobs if job is not None]
    assert await totals(backend.db, account) == (quote.hold * 6, quote.hold * 6)

    start = utcnow()
    await billing.start(ids[0], start)
    await billing.end(ids[0], "SUCCEEDED", later(start, 30))  # metered: the hold ends, the usage is charged
    await billing.end(ids[1], "CANCELLED", start)  # never ran: not metered
    await billing.end(ids[2], "FAILED", start)
    await billing.end(ids[2], "CANCELLED", start)  # ended already: nothing changes, nothing is taken twice
    assert await totals(backend.db, account) == (quote.hold * 3, quote.hold * 3)

    lowered = quote.hold / 2  # placement lowers the hold to the chosen center's terms
    await billing.ledger.apply(ids[3], lambda job: Change(columns={"hold_amount": lowered}))
    raised = quote.hold * 3  # placed on a center not quoted at submission
    await billing.ledger.apply(ids[4], lambda job: Change(columns={"hold_amount": raised}))
    assert await totals(backend.db, account) == (lowered + raised + quote.hold,) * 2

    async with backend.db.transaction() as session:
        await session.execute(update(JobRow).where(JobRow.id == ids[5]).values(hold_amount=None))
        await session.execute(delete(JobRow).where(JobRow.id == ids[4]))
        await session.execute(insert(JobRow).values(**raw_job(account, backend.center_id, Decimal("1.5"))))
        await session.execute(insert(JobRow).values(**raw_job(account, backend.center_id, Decimal("7"), state="SUCCEEDED")))
    assert await totals(backend.db, account) == (lowered + Decimal("1.5"),) * 2

    async with backend.db.read() as session:  # what balances and the refusals read
        assert (await billing_store.active_holds(session, [account]))[account] == lowered + Decimal("1.5")


async def test_a_hold_that_no_longer_fits_is_refused_by_the_kept_total(backend: Backend) -> None:
    quote = quote_for(PRICE, "1", 1, 60)
    billing = Billing(backend, quote.hold * 2)
    account = await billing.new_account()
    first, second = await billing.submit(quote, 60), await billing.submit(quote, 60)
    assert first is not None and second is not None
    assert await billing.submit(quote, 60) is None  # the two holds take the whole balance
    await billing.end(first, "CANCELLED", utcnow())
    assert await billing.submit(quote, 60) is not None  # the cancelled job's hold came back
    assert await totals(backend.db, account) == (quote.hold * 2, quote.hold * 2)


async def test_concurrent_submits_and_ends_from_two_gateways_keep_the_total(backend: Backend) -> None:
    """Two engines (two replicas) submit and end jobs of one account at once; every write
    races another. Afterwards the total equals the sum, and each job's hold was counted once."""
    other = await backend.second_database()
    try:
        quote = quote_for(PRICE, "1", 1, 60)
        replicas = [Billing(backend, Decimal("100000")), Billing(backend, Decimal("100000"), db=other)]
        account = await replicas[0].new_account()
        replicas[1].account_id = account
        rng = random.Random(18)

        async def worker(n: int) -> None:
            billing = replicas[n % 2]
            for round_ in range(12):
                job = await billing.submit(quote, 60, name=f"w{n}-{round_}")
                assert job is not None
                ending = rng.choice(["SUCCEEDED", "FAILED", "CANCELLED", None, "twice"])
                if ending is None:
                    continue  # stays unfinished: keeps its hold
                now = utcnow()
                if ending == "SUCCEEDED":
                    await billing.start(job, now)
                ends = [billing.end(job, "CANCELLED" if ending == "twice" else ending, later(now, 1))]
                if ending == "twice":  # both replicas end it at once: one end wins, the hold ends once
                    ends.append(replicas[(n + 1) % 2].end(job, "FAILED", later(now, 1)))
                await asyncio.gather(*ends)

        await asyncio.gather(*(worker(n) for n in range(8)))
        held, summed = await totals(backend.db, account)
        async with backend.db.read() as session:
            open_jobs = list(await session.scalars(select(JobRow).where(JobRow.owner_id == account, JobRow.finished_at.is_(None))))
        assert open_jobs and held == summed == sum((job.hold_amount for job in open_jobs), Decimal(0)) == quote.hold * len(open_jobs)
    finally:
        await other.dispose()


def raw_job(account_id: int, center_id: int, hold: Decimal, state: str = "RUNNING") -> dict[str, Any]:
    now = utcnow()
    return {
        "owner_id": account_id,
        "reference": f"raw-{uuid.uuid4().hex[:12]}",
        "name": "raw",
        "kind": "BATCH",
        "state": state,
        "center_id": center_id,
        "request": ResourceRequest(max_duration_minutes=60, accelerator="x", devices=1),
        "command": ["true"],
        "progress_count": 0,
        "last_seq": 0,
        "priority": 0,
        "submitted_at": now,
        "updated_at": now,
        "hold_amount": hold,
    }


async def test_the_migration_fills_the_total_from_the_jobs_already_there(database: DatabaseChoice, tmp_path: Path) -> None:
    from alembic import command

    if (database.url or "").startswith("sqlite"):
        url, schema = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", None
    else:
        require_service("127.0.0.1", 5432, "PostgreSQL")
        url, schema = POSTGRES_URL, f"m_{uuid.uuid4().hex[:12]}"
    db = Database(url, schema=schema)

    async def upgrade(revision: str) -> None:
        config = alembic_config(url)
        async with db.engine.begin() as connection:
            if schema:
                await connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

            def run(sync_connection: Any) -> None:
                config.attributes["connection"] = sync_connection
                command.upgrade(config, revision)

            await connection.run_sync(run)

    try:
        await upgrade("0022")
        async with db.transaction() as session:
            accounts = [AccountRow(name=f"old-{n}") for n in range(2)]
            session.add_all(accounts)
            await session.flush()
            for account in accounts:  # written before the column existed
                await session.execute(
                    text(
                        "INSERT INTO billing_accounts (account_id, currency, opening_balance, balance, lock_version, created_at, updated_at) "
                        "VALUES (:id, 'CNY', 100, 100, 0, :now, :now)"
                    ),
                    {"id": account.id, "now": utcnow()},
                )
            first, second = accounts[0].id, accounts[1].id
            (center_row,) = await sync_centers(session, [("local", "LOCAL", "Local", "test")])
            center = center_row.id
            for hold, state in ((Decimal("1.25"), "RUNNING"), (Decimal("2"), "QUEUED"), (Decimal("40"), "SUCCEEDED")):
                await session.execute(insert(JobRow).values(**raw_job(first, center, hold, state)))
            await session.execute(insert(JobRow).values(**raw_job(second, center, Decimal("9"), "CANCELLED")))
        await upgrade("head")
        assert await totals(db, first) == (Decimal("3.25"), Decimal("3.25"))
        assert await totals(db, second) == (Decimal(0), Decimal(0))
    finally:
        await db.dispose()
        if schema:
            await drop_schema(url, schema)
