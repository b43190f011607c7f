"""What a reconciler round reads of a busy center, against reading its jobs' whole rows.

Run: python bench/rounds.py  [--jobs N] [--postgres URL]

A center with N unfinished jobs (queued at the center, each with its submission) is what a round
reads every poll interval: a glance at each job (``store.jobs.unfinished_glances``: one Core read
of the columns a round plans with), against the baseline measured in the same run, the jobs' rows
as ORM objects without their documents (what a round read before: ``select(JobRow)`` with the
documents deferred). Printed per database (SQLite file, then PostgreSQL in a schema of its own,
dropped afterwards): the median wall time and process CPU time of one read, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, bindparam, insert, select, text
from sqlalchemy.orm import defer

from store import jobs as job_store
from store.db import Database
from store.resources import ResourceRequest
from store.states import TERMINAL_STATES, JobKind, JobState
from store.tables import AccountRow, CenterRow, JobRow
from store.types import utcnow

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REPEAT = 15
#: the rows a round read before the glance: every column but the documents it never reads
WHOLE_ROWS = (
    select(JobRow)
    .where(JobRow.center_id == bindparam("center_id"), JobRow.state.not_in(TERMINAL_STATES))
    .order_by(JobRow.id)
    .options(*(defer(column, raiseload=True) for column in job_store.ROUND_UNREAD))
)


async def seed(db: Database, jobs: int) -> int:
    """An account, a center and ``jobs`` jobs queued at it; the center's id."""
    async with db.transaction() as session:
        account, center = AccountRow(name="bench"), CenterRow(name="busy", kind="LOCAL", display_name="Busy")
        session.add_all([account, center])
        await session.flush()
        now = utcnow()
        common = {
            "owner_id": account.id, "kind": JobKind.BATCH, "state": JobState.QUEUED, "center_id": center.id, "command": ["true"],
            "request": ResourceRequest(max_duration_minutes=60, accelerator="cpu-core", devices=1), "environment": {"A": "1"},
            "placement": {"policy": "CHEAPEST", "terms": {}}, "progress_count": 0, "priority": 0, "last_seq": 3,
            "submitted_at": now, "updated_at": now, "cost": 0,
        }  # fmt: skip
        rows = [{**common, "reference": f"bench-{n}", "name": f"job-{n}", "external_id": str(n)} for n in range(jobs)]
        await session.execute(insert(cast(Table, JobRow.__table__)), rows)
        return center.id


async def timed(read: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """Median wall and CPU milliseconds of one read, and how many jobs it returned."""
    walls, cpus, found = [], [], 0
    for _ in range(REPEAT):
        wall, cpu = time.perf_counter(), time.process_time()
        found = await read()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), found


async def measure(label: str, db: Database, jobs: int) -> None:
    await db.migrate()
    center_id = await seed(db, jobs)

    async def whole_rows() -> int:
        async with db.read() as session:
            return len(list(await session.scalars(WHOLE_ROWS, {"center_id": center_id})))

    async def glances() -> int:
        async with db.read() as session:
            return len(await job_store.unfinished_glances(session, center_id))

    await whole_rows(), await glances()  # warm: statements compiled and cached, pages in memory
    base, ours = await timed(whole_rows), await timed(glances)
    assert base[2] == ours[2] == jobs, (base, ours)
    print(
        f"  {label:<10} {jobs} jobs  glance {ours[0]:7.1f} ms wall {ours[1]:7.1f} ms cpu | whole rows {base[0]:7.1f} ms wall"
        f" {base[1]:7.1f} ms cpu | {base[0] / ours[0]:.2f}x faster, {base[1] / ours[1]:.2f}x less cpu"
    )


async def main(jobs: int, postgres: str) -> None:
    print(f"one reconciler round's read of a center's unfinished jobs (median of {REPEAT})")
    with tempfile.TemporaryDirectory(prefix="aicn-bench-rounds-") as work:
        db = Database(f"sqlite+aiosqlite:///{Path(work) / 'aicn.db'}")
        try:
            await measure("sqlite", db, jobs)
        finally:
            await db.dispose()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    db = Database(postgres, schema=schema)
    try:
        await measure("postgres", db, jobs)
    finally:
        await db.dispose()
        admin = Database(postgres)
        async with admin.transaction() as session:
            await session.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="the center's unfinished jobs (default 5000)")
    parser.add_argument("--postgres", default=POSTGRES, help="the PostgreSQL database (a schema of its own is made and dropped)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.jobs, arguments.postgres))
