"""A reconciler round over a center whose one job's write the database refuses: that job alone
misses the round (logged with its id, counted in the metrics), the center's other jobs go on, and
the refused job is written once its center reports something the database takes."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import CenterJobState, JobStatus, ProgressReport
from connectors.fault import FaultyConnector
from resolvers.common.ids import int_key
from resolvers.common.metrics import REGISTRY
from store.types import utcnow
from tests.conftest import local_center
from tests.jobs_helpers import job_state, python_job, submit, wait_for_state
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases  # the refusal is the database's own


def failures(center: str) -> float:
    return REGISTRY.get_sample_value("aicn_reconcile_job_failures_total", {"center": center}) or 0.0


async def test_a_refused_write_costs_only_its_own_job_the_round(gateway_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    center = FaultyConnector("refusing", {"cpu-core": 8})  # keeps jobs QUEUED unless told what to report
    gateway = await gateway_factory([local_center("refusing")], {"refusing": center})
    gql = gateway.client
    refused = await submit(gql, python_job("print(1)", name="refused"))  # first: looked at first in each round
    fine = await submit(gql, python_job("print(1)", name="fine"))
    before = failures("refusing")
    # an exit code no integer column holds: the database (or its driver) refuses the job's end
    began = utcnow()
    center.answers["refused"] = JobStatus("", CenterJobState.FAILED, exit_code=2**70, started_at=began, finished_at=utcnow())
    half = ProgressReport(1, utcnow(), fraction=0.5, message="half way")
    center.answers["fine"] = JobStatus("", CenterJobState.RUNNING, started_at=utcnow(), progress=(half,))

    running = await wait_for_state(gql, fine["id"], {"RUNNING"})
    assert running["progress"]["message"] == "half way"
    await eventually(lambda: failures("refusing") >= before + 2, "two rounds failed the refused job")
    stuck = await job_state(gql, refused["id"])
    assert stuck["state"] == "QUEUED" and stuck["exitCode"] is None  # nothing of the refused write was kept
    assert f"reconciling job {int_key(refused['id'], 'Job')} on center refusing failed" in caplog.text

    center.answers["refused"] = JobStatus("", CenterJobState.FAILED, exit_code=3, started_at=began, finished_at=utcnow())
    center.answers["fine"] = JobStatus("", CenterJobState.SUCCEEDED, exit_code=0, started_at=utcnow(), finished_at=utcnow())
    ended = await wait_for_state(gql, refused["id"], {"FAILED"})
    assert ended["exitCode"] == 3
    await wait_for_state(gql, fine["id"], {"SUCCEEDED"})
    for job in (refused, fine):
        events = [edge["node"] for edge in (await job_state(gql, job["id"]))["events"]["edges"]]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["kind"] for event in events].count("USAGE") == 1  # metered once
        states = [event["state"] for event in events if event["kind"] == "STATE"]
        assert len(states) == len(set(states)), states


async def test_a_refused_progress_write_costs_only_its_own_job_the_round(gateway_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The jobs still going at the center are written together in one transaction: should the database
    refuse one of them, the others are still written, each in a transaction of its own."""
    center = FaultyConnector("refusing", {"cpu-core": 8})
    gateway = await gateway_factory([local_center("refusing")], {"refusing": center})
    gql = gateway.client
    refused = await submit(gql, python_job("print(1)", name="refused"))
    fine = await submit(gql, python_job("print(1)", name="fine"))
    before = failures("refusing")
    # a progress ordinal no integer column holds (the job's progress count): its write is refused
    center.answers["refused"] = JobStatus("", CenterJobState.RUNNING, started_at=utcnow(), progress=(ProgressReport(2**70, utcnow()),))
    half = ProgressReport(1, utcnow(), fraction=0.5, message="half way")
    center.answers["fine"] = JobStatus("", CenterJobState.RUNNING, started_at=utcnow(), progress=(half,))

    running = await wait_for_state(gql, fine["id"], {"RUNNING"})
    assert running["progress"]["message"] == "half way"
    await eventually(lambda: failures("refusing") >= before + 2, "two rounds failed the refused job")
    assert (await job_state(gql, refused["id"]))["state"] == "QUEUED"  # nothing of the refused write was kept
    assert f"reconciling job {int_key(refused['id'], 'Job')} on center refusing failed" in caplog.text

    center.answers["refused"] = JobStatus("", CenterJobState.RUNNING, started_at=utcnow(), progress=(half,))
    await wait_for_state(gql, refused["id"], {"RUNNING"})
    for job in (refused, fine):
        events = [edge["node"] for edge in (await job_state(gql, job["id"]))["events"]["edges"]]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert [event["kind"] for event in events].count("PROGRESS") == 1
