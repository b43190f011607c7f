"""Billing at scale on PostgreSQL: one account-month with 1,000,000 usage records.

Run: python bench/billing.py  [--rows N] [--url postgresql+asyncpg://...]

In a temporary schema (dropped afterwards) it migrates, then inserts N jobs, usage records
and bill lines for one bill in three INSERT ... SELECT generate_series statements, keeps
the bill's stored total the way the gateway does, and times:

* the database-side total of the bill (SUM over its lines; must be under 1 s), next to
  the stored total that the API serves;
* one page of the bill's lines by keyset, first page against pages deep in the list
  (the same cost wherever the page is).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resolvers.billing.periods import Calendar
from store import billing as billing_store
from store.billing_tables import BillRow
from store.db import Database

DEFAULT_URL = os.environ.get("AICN_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PAGE = 100
REPEAT = 7

SEED = """
INSERT INTO accounts (id, name, created_at) VALUES (1, 'bench', now());
INSERT INTO centers (id, name, kind, display_name, region, created_at) VALUES (1, 'bench-center', 'LOCAL', 'Bench', 'bench', now());
INSERT INTO billing_accounts (account_id, currency, opening_balance, balance, lock_version, created_at, updated_at)
     VALUES (1, 'CNY', 100000000, 100000000, 0, now(), now());
INSERT INTO bills (id, account_id, period, period_start, period_end, status, currency, total, line_count, created_at)
     VALUES (1, 1, :period, :start, :end, 'OPEN', 'CNY', 0, 0, now());
"""

JOBS = """
INSERT INTO jobs (id, owner_id, reference, name, kind, state, center_id, external_id, request, command, progress_count,
                  last_seq, submitted_at, started_at, finished_at, updated_at, unit_price, currency, units_per_device, hold_amount)
SELECT g, 1, 'bench-' || g, 'job-' || g, 'BATCH', 'SUCCEEDED', 1, g::text,
       '{"accelerator": "nvidia-a100-80gb", "devices": 1, "maxDurationMinutes": 60}'::jsonb, '["true"]'::jsonb, 0,
       6, CAST(:start AS timestamptz) + make_interval(secs => g), CAST(:start AS timestamptz) + make_interval(secs => g), CAST(:start AS timestamptz) + make_interval(secs => g + 1 + g % 3600),
       now(), 2.5, 'CNY', 3.12, 7.8
  FROM generate_series(1, CAST(:rows AS integer)) AS g
"""

USAGE = """
INSERT INTO usage_records (id, job_id, account_id, center_id, bill_id, started_at, ended_at, seconds, accelerator, devices,
                           units_per_device, standard_unit_hours, unit_price, currency, amount, created_at)
SELECT g, g, 1, 1, 1, CAST(:start AS timestamptz) + make_interval(secs => g), CAST(:start AS timestamptz) + make_interval(secs => g + 1 + g % 3600), 1 + g % 3600,
       'nvidia-a100-80gb', 1, 3.12, round(3.12 * (1 + g % 3600) / 3600, 9), 2.5, 'CNY',
       round(3.12 * (1 + g % 3600) * 2.5 / 3600, 6), now()
  FROM generate_series(1, CAST(:rows AS integer)) AS g
"""

LINES = """
INSERT INTO bill_lines (id, bill_id, kind, usage_id, description, amount, created_at)
SELECT u.id, 1, 'USAGE', u.id, 'job-' || u.job_id, u.amount, now() FROM usage_records AS u
"""


async def timed(work: Callable[[], Awaitable[Any]], repeat: int = REPEAT) -> tuple[float, Any]:
    """Median wall time in milliseconds of ``repeat`` runs, and the last result."""
    times: list[float] = []
    result = await work()  # warm the caches first
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def run(url: str, rows: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    db = Database(url, schema=schema)
    period = Calendar("UTC").period_of(datetime.now(UTC))
    params = {"period": period.label, "start": period.start, "end": period.end, "rows": rows}
    try:
        await db.migrate()
        print(f"schema {schema}: migrated; inserting {rows:,} jobs, usage records and bill lines for one account-month")
        started = time.perf_counter()
        async with db.engine.begin() as connection:
            for statement in SEED.strip().split(";\n"):
                await connection.execute(text(statement), params)
            for label, statement in (("jobs", JOBS), ("usage records", USAGE), ("bill lines", LINES)):
                step = time.perf_counter()
                await connection.execute(text(statement), params)
                print(f"  {label:<14} {time.perf_counter() - step:6.1f} s")
            # the stored total and count, as the gateway keeps them line by line
            await connection.execute(
                text("UPDATE bills SET total = (SELECT sum(amount) FROM bill_lines WHERE bill_id = 1), line_count = :rows WHERE id = 1"),
                params,
            )
        async with db.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("jobs", "usage_records", "bill_lines", "bills"):
                await connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
        print(f"  inserted and analyzed in {time.perf_counter() - started:.1f} s\n")

        async def database_total() -> Decimal:
            async with db.read() as session:
                return await billing_store.lines_total(session, 1)

        async def stored_total() -> Decimal:
            async with db.read() as session:
                bill = await session.get(BillRow, 1, populate_existing=True)
                assert bill is not None
                return bill.total

        sum_ms, summed = await timed(database_total)
        stored_ms, stored = await timed(stored_total)
        assert summed == stored, (summed, stored)
        print(
            f"bill total, database SUM over {rows:,} lines : {sum_ms:8.1f} ms  = {summed} CNY  ({'within' if sum_ms < 1000 else 'OVER'} the 1 s budget)"
        )
        print(f"bill total, stored (what Bill.total serves)   : {stored_ms:8.2f} ms  = {stored} CNY  (equal to the SUM)")

        async def page_after(after: int | None) -> int:
            async with db.read() as session:
                page = await billing_store.lines_page(session, 1, first=PAGE, after=after)
            return len(page.rows)

        print(f"\nlines(first: {PAGE}, after: ...) by keyset, median of {REPEAT}, and the buffers the page's query touches:")
        for label, after in (
            ("first page", None),
            ("after 10%", rows // 10),
            ("after 50%", rows // 2),
            ("after 99.9%", rows - rows // 1000 - PAGE),
        ):
            page_ms, count = await timed(functools.partial(page_after, after))
            buffers, scan = await page_plan(db, after or 0)
            print(
                f"  {label:<12} (after id {after if after is not None else '-':>9}) {page_ms:7.2f} ms  {count} lines  {buffers:>3} buffers  {scan}"
            )
    finally:
        await db.dispose()
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await engine.dispose()
        print(f"\nschema {schema} dropped")


async def page_plan(db: Database, after: int) -> tuple[int, str]:
    """Buffers read by the keyset query of one page, and its scan (EXPLAIN ANALYZE, BUFFERS)."""
    async with db.engine.connect() as connection:
        plan = [
            row[0]
            for row in await connection.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM bill_lines WHERE bill_id = 1 AND id > :after ORDER BY id LIMIT :limit"),
                {"after": after, "limit": PAGE + 1},
            )
        ]
    scan = next((line.strip().split("  (")[0].lstrip("-> ") for line in plan if "Scan" in line), "?")
    buffers = next((line for line in plan if "Buffers:" in line), "")
    touched = sum(int(part.split("=")[1]) for part in buffers.replace(",", " ").split() if "=" in part)
    return touched, scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.rows))


if __name__ == "__main__":
    main()
