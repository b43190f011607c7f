"""What a reconciler round costs: a job its center reports as recorded costs no transaction (a
center with many queued jobs is polled with one read), and a hand-over makes the reconciler look
at the handed job only, not at every unfinished job of the center (hand-overs come as fast as
submissions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from connectors.base import CenterJobState, JobStatus, ProgressReport, StatusQuery
from connectors.fault import FaultyConnector
from graph.http.logs import REQUEST_ID
from store.types import utcnow
from tests.conftest import local_center
from tests.jobs_helpers import job_state, python_job, submit, wait_for_state
from tests.statements import COUNTED_REQUEST, statements_of
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
        assert len(statements) == 1 and "FROM jobs" in statements[0], statements  # the read of its unfinished jobs

        center.answers["job-1"] = JobStatus("", CenterJobState.RUNNING)
        with statements_of(gateway, selects_only=False) as statements:
            assert await reconciler.reconcile_once()
        assert sum(statement.startswith("UPDATE jobs ") for statement in statements) == 1, statements  # that job alone
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

    counted = REQUEST_ID.set(COUNTED_REQUEST)
    try:
        with statements_of(gateway, selects_only=False) as statements:
            assert await reconciler.reconcile_once()
    finally:
        REQUEST_ID.reset(counted)
    # one lease fence check and one lock of the three rows for the round, not one of each per job
    assert sum("FROM leases" in statement for statement in statements) == 1, statements
    assert sum(statement.startswith("SELECT") and "FROM jobs" in statement for statement in statements) == 2, statements
    for n, job in enumerate(jobs):
        running = await wait_for_state(gateway.client, job["id"], {"RUNNING"})
        assert running["progress"]["message"] == f"half of job-{n}"
        events = [edge["node"] for edge in (await job_state(gateway.client, job["id"]))["events"]["edges"]]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["kind"] for event in events].count("PROGRESS") == 1
