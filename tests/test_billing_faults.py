"""Metering survives faults: a gateway SIGKILLed around a job's end, and writers racing.

The gateway here is a real separate process (`aicn serve`); LOCAL jobs outlive it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.base import CenterDescription, CenterJobState, Connector, DeviceCapacity, JobSpec, JobStatus, StatusQuery, Submission
from connectors.catalog import DEFAULT_CATALOG
from resolvers.centers.registry import Center, CenterRegistry
from resolvers.jobs.dispatch import Dispatcher
from resolvers.jobs.ledger import Change
from resolvers.jobs.reconciler import Reconciler
from resolvers.jobs.service import JobService
from store.billing_tables import BillingAccountRow, BillLineRow, UsageRecordRow
from store.db import Database
from store.tables import JobEventRow, JobRow
from store.types import utcnow
from tests.billing_harness import Backend, Billing, quote_for
from tests.billing_helpers import job_usage
from tests.conftest import DIALECTS, TEST_LOCK_TIMEOUT, DatabaseChoice
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.processes import folder_jobs_can_read
from tests.served_gateway import ServedGateway, write_config
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases  # what survives a crash or a race is the database's locking and transactions


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    assert database.url is not None
    gateway = ServedGateway(write_config(tmp_path, database.url, database.schema))
    try:
        yield gateway
    finally:
        gateway.kill()
        await gateway.client.close()


async def metering_of(database: DatabaseChoice, job_key: int) -> dict[str, Any]:
    db = Database(database.url or "", schema=database.schema)
    try:
        async with db.read() as session:
            job = await session.get(JobRow, job_key)
            assert job is not None
            usages = list(await session.scalars(select(UsageRecordRow).where(UsageRecordRow.job_id == job_key)))
            events = (
                await session.execute(
                    select(JobEventRow.kind, JobEventRow.state).where(JobEventRow.job_id == job_key).order_by(JobEventRow.seq)
                )
            ).all()
            lines = await session.scalar(
                select(func.count()).select_from(BillLineRow).where(BillLineRow.usage_id.in_([u.id for u in usages] or [-1]))
            )
            account = await session.get(BillingAccountRow, job.owner_id)
        return {
            "state": job.state,
            "usages": usages,
            "kinds": [kind for kind, _ in events],
            "endings": [state for kind, state in events if kind == "STATE" and state in ("SUCCEEDED", "FAILED", "CANCELLED")],
            "lines": lines,
            "balance": account.balance if account else None,
        }
    finally:
        await db.dispose()


def job_key(global_id: str) -> int:
    import base64

    return int(base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode().split(":")[1])


@pytest.fixture
def go() -> Iterator[Path]:
    """The file whose existence lets a `waits_for` job finish, where the job's own user can see it."""
    with folder_jobs_can_read() as folder:
        yield folder / "go"


def waits_for(go: Path) -> str:
    """A job that runs until the test says go (so it cannot end before the test is ready)."""
    return f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\ntime.sleep(1.0)"


async def wait_for_center_end(data_dir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((data_dir / "centers" / "local" / "jobs").glob("*/result.json")):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not end at its center")


async def test_a_job_that_ends_while_the_gateway_is_dead_is_metered_once_on_restart(
    served: ServedGateway, database: DatabaseChoice, go: Path
) -> None:
    await served.start()
    job = await submit(served.client, python_job(waits_for(go)))
    await wait_for_state(served.client, job["id"], {"RUNNING"})
    served.kill()
    go.touch()
    await wait_for_center_end(served.config.parent / "data")
    before = await metering_of(database, job_key(job["id"]))
    assert before["state"] == "RUNNING" and before["usages"] == []

    await served.start()
    await wait_for_state(served.client, job["id"], {"SUCCEEDED"})
    await asyncio.sleep(0.5)  # more reconciler rounds: still one record
    after = await metering_of(database, job_key(job["id"]))
    assert len(after["usages"]) == 1 and after["lines"] == 1 and after["kinds"].count("USAGE") == 1
    assert after["endings"] == ["SUCCEEDED"] and after["kinds"][-2:] == ["USAGE", "STATE"]
    usage = after["usages"][0]
    assert after["balance"] == Decimal("1000") - usage.amount
    assert usage.seconds >= 1 and usage.amount == Decimal("0.032") * usage.seconds
    shown = await job_usage(served.client, job["id"])
    assert shown["usage"]["amount"]["amount"] == str(usage.amount)


async def test_a_gateway_killed_in_the_middle_of_metering_meters_once_after_restart(
    served: ServedGateway, database: DatabaseChoice, go: Path
) -> None:
    await served.start()
    job = await submit(served.client, python_job(waits_for(go)))
    await wait_for_state(served.client, job["id"], {"RUNNING"})
    async with blocked_metering(database, job_key(job["id"])) as blocker:
        go.touch()
        await wait_for_center_end(served.config.parent / "data")
        await wait_until_metering_waits(database, blocker)
        served.kill()  # its transaction (the job's end, half its metering) never commits
    before = await metering_of(database, job_key(job["id"]))
    assert before["state"] == "RUNNING" and before["usages"] == [] and "USAGE" not in before["kinds"] and before["endings"] == []

    await served.start()
    await wait_for_state(served.client, job["id"], {"SUCCEEDED"})
    await asyncio.sleep(0.5)
    after = await metering_of(database, job_key(job["id"]))
    assert len(after["usages"]) == 1 and after["lines"] == 1 and after["kinds"].count("USAGE") == 1
    assert after["endings"] == ["SUCCEEDED"] and after["kinds"][-2:] == ["USAGE", "STATE"]
    assert after["balance"] == Decimal("1000") - after["usages"][0].amount


class blocked_metering:
    """Hold what metering needs: the account's billing row on PostgreSQL (the gateway's
    transaction has written the job's end and waits for it), the write lock on SQLite."""

    def __init__(self, database: DatabaseChoice, job_key: int) -> None:
        self.database = database
        self.job_key = job_key
        self._sqlite: sqlite3.Connection | None = None
        self._engine: Any = None
        self._connection: Any = None
        self.backend_pid: int | None = None  # PostgreSQL: the session that holds the account's row

    async def __aenter__(self) -> blocked_metering:
        url = self.database.url or ""
        if url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=30)
            self._sqlite.execute("BEGIN IMMEDIATE")
            return self
        settings = {"search_path": self.database.schema or "public", "lock_timeout": TEST_LOCK_TIMEOUT}
        self._engine = create_async_engine(url, connect_args={"server_settings": settings})
        self._connection = await self._engine.connect()
        await self._connection.begin()
        self.backend_pid = await self._connection.scalar(text("SELECT pg_backend_pid()"))
        owner = await self._connection.scalar(text("SELECT owner_id FROM jobs WHERE id = :id"), {"id": self.job_key})
        locked = await self._connection.scalar(
            text("SELECT account_id FROM billing_accounts WHERE account_id = :id FOR UPDATE"), {"id": owner}
        )
        assert locked == owner
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
        if self._connection is not None:
            await self._connection.rollback()
            await self._connection.close()
            await self._engine.dispose()


async def wait_until_metering_waits(database: DatabaseChoice, blocker: blocked_metering, timeout: float = 20) -> None:
    if (database.url or "").startswith("sqlite"):
        # SQLite shows no one who waits on its lock: the reconciler polls every 0.05 s, and within
        # this second its write has begun to wait on the lock the test holds
        await asyncio.sleep(1.0)
        return
    engine = create_async_engine(database.url or "")

    async def someone_waits_on_the_account() -> bool:
        # only sessions blocked by the test's own: other suites may share this PostgreSQL
        async with engine.connect() as connection:
            waiting = await connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE :blocker = ANY(pg_blocking_pids(pid))"), {"blocker": blocker.backend_pid}
            )
        return bool(waiting)

    try:
        await eventually(someone_waits_on_the_account, "the gateway's metering waits on the account", timeout=timeout, interval=0.05)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------- two reconcilers racing


class EndedEverywhere(Connector):
    """A test double of a center that reports every job it is asked about as just ended."""

    kind = "LOCAL"

    def __init__(self, started: Any, finished: Any) -> None:
        super().__init__("double")
        self.started, self.finished = started, finished

    async def describe(self) -> CenterDescription:
        return CenterDescription(kind="LOCAL", name="double")

    async def capacity(self) -> list[DeviceCapacity]:
        return []

    async def submit(self, spec: JobSpec) -> Submission:
        raise NotImplementedError

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        await asyncio.sleep(0)
        return {
            query.external_id: JobStatus(
                query.external_id, CenterJobState.SUCCEEDED, exit_code=0, started_at=self.started, finished_at=self.finished
            )
            for query in queries
        }

    async def cancel(self, external_id: str) -> None:
        return None

    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        return ""


@pytest.fixture(params=DIALECTS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        from tests.conftest import require_service

        require_service("127.0.0.1", 5432, "PostgreSQL")
    opened = await Backend.open(request.param, str(tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


async def test_two_reconcilers_racing_to_end_the_same_jobs_write_one_record_each(backend: Backend) -> None:
    started = utcnow() - timedelta(seconds=90)
    finished = started + timedelta(seconds=61, microseconds=5)
    gateways = [Billing(backend, Decimal("1000")), Billing(backend, Decimal("1000"), db=await backend.second_database())]
    billing = gateways[0]
    await billing.new_account()
    quote = quote_for(Decimal("3.00"), "3.12", 2, 5)
    job_ids = []
    for n in range(12):
        job_id = await billing.submit(quote, 5, name=f"race-{n}")
        assert job_id is not None
        job_ids.append(job_id)

        def running(job: JobRow, n: int = n) -> Change:
            change = Change()
            change.columns.update(started_at=started, external_id=f"ext-{n}")
            change.state("STARTING")
            change.state("RUNNING")
            return change

        await billing.ledger.apply(job_id, running)
    reconcilers = []
    for gateway in gateways:
        center = Center(backend.center_id, "local", "LOCAL", "Local", "test", EndedEverywhere(started, finished), [], 5.0, 0.05)
        registry = CenterRegistry([center], DEFAULT_CATALOG, "CNY")
        dispatcher = Dispatcher(gateway.db, registry, gateway.ledger, DEFAULT_CATALOG)
        jobs = JobService(gateway.db, registry, gateway.ledger, dispatcher)
        reconcilers.append(Reconciler(gateway.db, registry, gateway.ledger, jobs, center))
    try:
        await asyncio.gather(*(reconciler.reconcile_once() for reconciler in reconcilers))
        await asyncio.gather(*(reconciler.reconcile_once() for reconciler in reconcilers))  # and again: nothing more
        snapshot = await billing.snapshot()
    finally:
        await gateways[1].db.dispose()
    assert snapshot.jobs_with_two_records == []
    assert sorted(usage.job_id for usage in snapshot.usages) == sorted(job_ids)
    for job_id in job_ids:
        kinds = [event.kind for event in snapshot.events_of(job_id)]
        assert kinds.count("USAGE") == 1 and [event.state for event in snapshot.events_of(job_id)].count("SUCCEEDED") == 1
    each = Decimal("3.12") * 2 * 62 * Decimal("3.00") / 3600  # 61.000005 s ran: 62 started seconds
    assert all(usage.seconds == 62 and usage.amount == each.quantize(Decimal("0.000001")) for usage in snapshot.usages)
    assert snapshot.account is not None and snapshot.account.balance == Decimal("1000") - 12 * each.quantize(Decimal("0.000001"))
    assert len(snapshot.lines) == 12 and snapshot.bills[0].total == 12 * each.quantize(Decimal("0.000001"))
