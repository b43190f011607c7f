"""A dashboard's reads at scale on PostgreSQL: one account with N jobs that ran (each metered).

Run: python bench/dashboard.py  [--rows N] [--url postgresql+asyncpg://...]

In a temporary schema (dropped afterwards) it seeds the jobs and usage records the way
bench/billing.py does, then times ``jobStats`` (one GROUP BY over the account's jobs) and
one page of ``jobs(orderBy: COST)`` by keyset, first and deep, next to ``orderBy: NEWEST``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing import DEFAULT_URL, JOBS, REPEAT, SEED, USAGE, timed  # bench/billing.py, beside this file
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resolvers.billing.periods import Calendar
from store import jobs as job_store
from store.db import Database
from store.jobs import JobCursor, JobOrder, JobQuery

PAGE = 50
#: what metering writes on each job with its usage record
COSTS = "UPDATE jobs SET cost = u.amount FROM usage_records AS u WHERE u.job_id = jobs.id"
QUERY = JobQuery(owner_id=1)


async def run(url: str, rows: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    db = Database(url, schema=schema)
    period = Calendar("UTC").period_of(datetime.now(UTC))
    params = {"period": period.label, "start": period.start, "end": period.end, "rows": rows}
    try:
        await db.migrate()
        async with db.engine.begin() as connection:
            for statement in (*SEED.strip().split(";\n"), JOBS, USAGE, COSTS):
                await connection.execute(text(statement), params)
        async with db.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("jobs", "usage_records"):
                await connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
        print(f"schema {schema}: {rows:,} jobs with their usage, median of {REPEAT} runs\n")

        async def stats() -> int:
            async with db.read() as session:
                return sum((await job_store.count_by_state(session, QUERY)).values())

        stats_ms, counted = await timed(stats)
        assert counted == rows
        print(f"jobStats (GROUP BY state)             : {stats_ms:8.1f} ms  ({counted:,} jobs)")

        async def page(order: JobOrder, after: JobCursor | None) -> list[tuple[int, Decimal]]:
            async with db.read() as session:
                found = await job_store.sorted_jobs_page(session, QUERY, order, first=PAGE, after=after)
            return [(row.id, cost) for row, cost in found.rows]

        first_ms, first = await timed(lambda: page(JobOrder.COST, None))
        middle = JobCursor(id=rows // 2, cost=(first[-1][1] / 2).quantize(Decimal("0.000001")))
        deep_ms, _ = await timed(lambda: page(JobOrder.COST, middle))
        newest_ms, _ = await timed(lambda: page(JobOrder.NEWEST, None))
        print(f"jobs(first: {PAGE}, orderBy: COST)         : {first_ms:8.1f} ms")
        print(f"jobs(first: {PAGE}, orderBy: COST, after:) : {deep_ms:8.1f} ms  (a cursor half way down)")
        print(f"jobs(first: {PAGE}, orderBy: NEWEST)       : {newest_ms:8.1f} ms")
    finally:
        await db.dispose()
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--url", default=DEFAULT_URL)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.rows))


if __name__ == "__main__":
    main()
