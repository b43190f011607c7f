"""What a reconciler round costs: a job its center reports as recorded costs no transaction (a
center with many queued jobs is polled with one read of a glance at each), and a hand-over makes the reconciler look
at the handed job only, not at every unfinished job of the center (hand-overs come as fast as
submissions). A center with no unfinished job costs no statement at all while it stays idle, and
still has a job handed to it looked at at once, from this replica or from another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import pytest

from aicn.replica_settings import ReplicaSettings
from aicn.runtime import center_lease
from connectors.base import CenterJobState, JobStatus, ProgressReport, StatusQuery
from connectors.fault import FaultyConnector
from graph.http.logs import REQUEST_ID
from resolvers.jobs import reconciler as reconciler_module
from store.types import utcnow
from tests.conftest import Gateway, local_center, require_service
from tests.jobs_helpers import job_state, python_job, submit, wait_for_state
from tests.statements import COUNTED_REQUEST, statements_of, task_statements
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases


class AskedConnector(FaultyConnector):
    """Keeps the external ids of each status call."""

    def __init__(self, name: str, devices: dict[str, int]) -> None:
        super().__init__(name, devices)
        self.asked: list[set[str]] = []

    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        self.asked.append({query.external_id for query in queries})
        return await super().status(queries)


async def round_statements(gateway: Gateway, reconciler: Any) -> list[str]:
    """The statements of one full round of ``reconciler``, run by this task (not of the loops')."""
    counted = REQUEST_ID.set(COUNTED_REQUEST)
    try:
        with statements_of(gateway, selects_only=False) as statements:
            assert await reconciler.reconcile_once()
    finally:
        REQUEST_ID.reset(counted)
    return statements


async def test_a_round_over_unchanged_jobs_writes_nothing(gateway_factory: Any) -> None:
    center = FaultyConnector("queueing", {"cpu-core": 8})  # keeps jobs QUEUED unless told what to report
    gateway = await gateway_factory([local_center("queueing", poll_interval_seconds=3600)], {"queueing": center})
    jobs = [await submit(gateway.client, python_job("print(1)", name=f"job-{n}")) for n in range(3)]
    for job in jobs:
        await wait_for_state(gateway.client, job["id"], {"QUEUED"})
    reconciler = next(r for r in gateway.runtime.reconcilers if r.center.name == "queueing")

    counted = REQUEST_ID.set(COUNTED_REQUEST)  # the statements of this task's round, not of the loops'
    try:
        with statements_of(gateway, selects_only=False) as statements:
            assert await reconciler.reconcile_once()
        # one read of its unfinished jobs, and a glance at each: not its whole row (the request, the command, ...)
        assert len(statements) == 1 and "FROM jobs" in statements[0], statements
        assert "jobs.external_id" in statements[0] and "jobs.request" not in statements[0] and "jobs.command" not in statements[0]

        center.answers["job-1"] = JobStatus("", CenterJobState.RUNNING)
        with statements_of(gateway, selects_only=False) as statements:
            assert await reconciler.reconcile_once()
        assert sum(statement.startswith("UPDATE jobs ") for statement in statements) == 1, statements  # that job alone
        # the glance and the lock of the row it writes: no read of the whole rows in between
        assert sum(statement.startswith("SELECT") and "FROM jobs" in statement for statement in statements) == 2, statements
    finally:
        REQUEST_ID.reset(counted)
    states = [(await wait_for_state(gateway.client, job["id"], {"QUEUED", "RUNNING"}))["state"] for job in jobs]
    assert states == ["QUEUED", "RUNNING", "QUEUED"]


async def test_a_hand_over_looks_at_the_handed_job_only(gateway_factory: Any) -> None:
    center = AskedConnector("queueing", {"cpu-core": 8})
    # no poll is due during the test: what the reconciler asks after the first round is the hand-overs' doing
    gateway = await gateway_factory([local_center("queueing", poll_interval_seconds=3600)], {"queueing": center})
    center.answers["last"] = JobStatus("", CenterJobState.RUNNING)

    def external_id(name: str) -> str:
        return next(key for key, spec in center.submitted.items() if spec.name == name)

    for name in ("first", "second", "last"):
        job = await submit(gateway.client, python_job("print(1)", name=name))
        await eventually(lambda: any(external_id(name) in ids for ids in center.asked), f"the reconciler asked about {name}")  # noqa: B023
    await wait_for_state(gateway.client, job["id"], {"RUNNING"})  # looked at once, not a poll interval later
    assert [ids for ids in center.asked if external_id("last") in ids] == [{external_id("last")}]
    assert [ids for ids in center.asked if external_id("second") in ids] == [{external_id("second")}]


async def test_a_round_writes_its_jobs_progress_in_one_transaction(gateway_factory: Any) -> None:
    center = FaultyConnector("busy", {"cpu-core": 8})
    gateway = await gateway_factory([local_center("busy", poll_interval_seconds=3600)], {"busy": center})
    jobs = [await submit(gateway.client, python_job("print(1)", name=f"job-{n}")) for n in range(3)]
    for job in jobs:
        await wait_for_state(gateway.client, job["id"], {"QUEUED"})
    reconciler = next(r for r in gateway.runtime.reconcilers if r.center.name == "busy")
    for n in range(3):
        report = ProgressReport(1, utcnow(), fraction=0.5, message=f"half of job-{n}")
        center.answers[f"job-{n}"] = JobStatus("", CenterJobState.RUNNING, started_at=utcnow(), progress=(report,))

    statements = await round_statements(gateway, reconciler)
    # one lease fence check and one lock of the three rows for the round, not one of each per job
    assert sum("FROM leases" in statement for statement in statements) == 1, statements
    assert sum(statement.startswith("SELECT") and "FROM jobs" in statement for statement in statements) == 2, statements
    for n, job in enumerate(jobs):
        running = await wait_for_state(gateway.client, job["id"], {"RUNNING"})
        assert running["progress"]["message"] == f"half of job-{n}"
        events = [edge["node"] for edge in (await job_state(gateway.client, job["id"]))["events"]["edges"]]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["kind"] for event in events].count("PROGRESS") == 1


async def test_a_round_s_ends_go_out_together_after_every_job_s_last_lines(gateway_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs ending in one round: every job's progress (the ending ones' last lines too) is written and
    announced first, in one transaction, then the ends, together: two fence checks, not one per job."""
    center = FaultyConnector("ending", {"cpu-core": 8})
    gateway = await gateway_factory([local_center("ending", poll_interval_seconds=3600)], {"ending": center})
    jobs = [await submit(gateway.client, python_job("print(1)", name=f"job-{n}")) for n in range(4)]
    for job in jobs:
        await wait_for_state(gateway.client, job["id"], {"QUEUED"})
    reconciler = next(r for r in gateway.runtime.reconcilers if r.center.name == "ending")
    began = utcnow()
    for n in range(4):
        last = ProgressReport(1, utcnow(), fraction=1.0, message=f"last line of job-{n}")
        state = CenterJobState.RUNNING if n == 3 else CenterJobState.SUCCEEDED
        center.answers[f"job-{n}"] = JobStatus(
            "", state, exit_code=0 if n < 3 else None, started_at=began, finished_at=utcnow(), progress=(last,)
        )
    announced: list[tuple[int, str, str | None]] = []
    announce = reconciler.ledger.announce

    async def recording(records: Sequence[Any]) -> None:
        announced.extend((record.job_id, record.kind.value, record.state.value if record.state else None) for record in records)
        await announce(records)

    monkeypatch.setattr(reconciler.ledger, "announce", recording)
    statements = await round_statements(gateway, reconciler)
    assert sum("FROM leases" in statement for statement in statements) == 2, statements
    kinds = [kind for _job, kind, _state in announced]
    ends = [n for n, (_job, kind, state) in enumerate(announced) if kind == "STATE" and state == "SUCCEEDED"]
    assert kinds.count("PROGRESS") == 4 and len(ends) == 3
    assert max(n for n, kind in enumerate(kinds) if kind == "PROGRESS") < min(ends), announced  # no last line waits for an end
    for n, job in enumerate(jobs):
        recorded = await job_state(gateway.client, job["id"])
        assert recorded["state"] == ("RUNNING" if n == 3 else "SUCCEEDED")
        events = [edge["node"] for edge in recorded["events"]["edges"]]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["kind"] for event in events].count("PROGRESS") == 1
        assert [event["kind"] for event in events].count("USAGE") == (0 if n == 3 else 1)  # metered once


def reconciler_statements(gateway: Gateway, center: str) -> AbstractContextManager[list[str]]:
    """The statements the reconciler of ``center`` issues."""
    return task_statements(gateway, f"reconciler-{center}")


#: how long an idle center is watched for statements: past the idle poll reconcilers used to make (every 2 s)
IDLE_SECONDS = 3.0


async def test_an_idle_center_costs_no_statement_and_a_handed_job_is_looked_at_at_once(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no sweep during the test: what the reconciler reads is the hand-over's doing alone
    monkeypatch.setattr(reconciler_module, "SWEEP_INTERVAL_SECONDS", 3600.0)
    center = AskedConnector("idle", {"cpu-core": 8})
    gateway = await gateway_factory([local_center("idle", poll_interval_seconds=0.05)], {"idle": center})
    reconciler = next(r for r in gateway.runtime.reconcilers if r.center.name == "idle")
    await eventually(lambda: reconciler.full_rounds >= 1, "the start's recovery and first round are over")
    with reconciler_statements(gateway, "idle") as statements:
        reconciler.wake()  # a full round: its one read is seen here
        await eventually(lambda: statements, "the woken round's read")
        assert len(statements) == 1 and "FROM jobs" in statements[0], statements
        statements.clear()
        await asyncio.sleep(IDLE_SECONDS)  # the idleness under test, not a wait for a condition
        assert statements == []
        center.answers["handed"] = JobStatus("", CenterJobState.RUNNING)
        job = await submit(gateway.client, python_job("print(1)", name="handed"))
        await wait_for_state(gateway.client, job["id"], {"RUNNING"}, timeout=IDLE_SECONDS)
    assert statements and center.asked  # the reconciler read the job and asked the center about it


async def test_a_job_handed_over_here_is_looked_at_with_no_read_of_it(gateway_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconciler_module, "SWEEP_INTERVAL_SECONDS", 3600.0)
    center = AskedConnector("queueing", {"cpu-core": 8})  # keeps jobs QUEUED unless told what to report
    gateway = await gateway_factory([local_center("queueing", poll_interval_seconds=3600)], {"queueing": center})
    reconciler = next(r for r in gateway.runtime.reconcilers if r.center.name == "queueing")

    def asked_about(name: str) -> bool:
        return any(spec.name == name and any(key in ids for ids in center.asked) for key, spec in center.submitted.items())

    with reconciler_statements(gateway, "queueing") as statements:
        reconciler.wake()
        await eventually(lambda: statements, "the woken round's read")
        statements.clear()
        await submit(gateway.client, python_job("print(1)", name="queued"))
        await eventually(lambda: asked_about("queued"), "the reconciler asked about the handed job")
        assert statements == []  # the glance the hand-over wrote, and the center reports it as recorded: nothing to read or write

        center.answers["started"] = JobStatus("", CenterJobState.RUNNING)
        job = await submit(gateway.client, python_job("print(1)", name="started"))
        await wait_for_state(gateway.client, job["id"], {"RUNNING"})
    # its write locks the row it plans against: that lock is the round's one read of the jobs
    assert sum(statement.startswith("UPDATE jobs ") for statement in statements) == 1, statements
    assert sum(statement.lstrip().startswith("SELECT") and "FROM jobs" in statement for statement in statements) == 1, statements


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share PostgreSQL and Redis
async def test_a_job_handed_over_on_another_replica_reaches_an_idle_centers_reconciler(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    monkeypatch.setattr(reconciler_module, "SWEEP_INTERVAL_SECONDS", 3600.0)
    center = AskedConnector("idle", {"cpu-core": 8})  # one center, seen by both replicas
    bus = {"bus_url": "redis://127.0.0.1:6379/0", "bus_prefix": f"aicn-test-{uuid.uuid4().hex[:12]}:"}
    replicas = [
        await gateway_factory(
            [local_center("idle", poll_interval_seconds=0.05)],
            {"idle": center},
            replicas=ReplicaSettings(name=f"replica-{n}", lease_seconds=2.0, heartbeat_seconds=0.5),
            **bus,
        )
        for n in range(2)
    ]

    def holder() -> Gateway | None:
        return next((replica for replica in replicas if replica.runtime.leases.holds(center_lease("idle"))), None)

    reconciling = await eventually(holder, "a replica holds the center's lease")
    other = next(replica for replica in replicas if replica is not reconciling)
    reconciler = next(r for r in reconciling.runtime.reconcilers if r.center.name == "idle")
    with reconciler_statements(reconciling, "idle") as statements:
        reconciler.wake()
        await eventually(lambda: statements, "the woken round's read")
        statements.clear()
        await asyncio.sleep(IDLE_SECONDS)
        assert statements == []  # idle: no poll
        center.answers["elsewhere"] = JobStatus("", CenterJobState.RUNNING)
        job = await submit(other.client, python_job("print(1)", name="elsewhere"))  # handed over by the other replica
        await wait_for_state(other.client, job["id"], {"RUNNING"}, timeout=IDLE_SECONDS)
    assert statements  # by the lease holder's reconciler, told over the bus
    assert holder() is reconciling


async def test_a_submission_an_idle_reconciler_was_never_told_of_is_found_by_the_sweep(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler_module, "SWEEP_INTERVAL_SECONDS", 0.3)
    center = AskedConnector("idle", {"cpu-core": 8})
    gateway = await gateway_factory([local_center("idle", poll_interval_seconds=0.05)], {"idle": center})
    # the tell is lost, as when a replica dies between recording a submission and publishing it
    gateway.runtime.dispatcher.on_hand_over = None
    center.answers["untold"] = JobStatus("", CenterJobState.RUNNING)
    job = await submit(gateway.client, python_job("print(1)", name="untold"))
    assert (await wait_for_state(gateway.client, job["id"], {"RUNNING"}, timeout=5))["state"] == "RUNNING"
