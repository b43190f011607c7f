"""The LOCAL connector against the shared conformance suite, plus what only LOCAL does."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.base import CenterJobState, StatusQuery
from connectors.local.connector import LocalConnector
from connectors.local.follow import DirectoryWatch
from tests.connector_contract import PYTHON, ConnectorContract, wait_for
from tests.processes import group_alive
from tests.waiting import eventually


@pytest.fixture(params=["auto", "none"])
async def connector(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalConnector]:
    """As root (CI) "auto" runs every job as the unprivileged user aicn-job; "none" as the gateway's user."""
    local = LocalConnector("local-test", tmp_path / "center", {"cpu-core": 2}, run_as=request.param)
    await local.start()
    yield local
    await local.close()


class TestLocalContract(ConnectorContract):
    settle_seconds = 20.0
    time_limit_seconds = 1.0
    time_limit_wait_seconds = 15.0


async def test_cancel_kills_the_whole_process_tree(connector: LocalConnector) -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    spec = ConnectorContract().spec([PYTHON, "-c", script])
    submission = await connector.submit(spec)
    await wait_for(connector, submission.external_id, [CenterJobState.RUNNING], 10)
    child = json.loads((connector.root / "jobs" / submission.external_id / "child.json").read_text())
    assert group_alive(child["pid"])
    await connector.cancel(submission.external_id)
    await wait_for(connector, submission.external_id, [CenterJobState.CANCELLED], 10)
    assert not group_alive(child["pid"])


async def test_jobs_are_reattached_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "center"
    first = LocalConnector("local-a", root, {"cpu-core": 1})
    await first.start()
    running = await first.submit(ConnectorContract().spec([PYTHON, "-c", "import time; time.sleep(1.5); print('finished')"]))
    queued = await first.submit(ConnectorContract().spec([PYTHON, "-c", "print('second')"]))
    await wait_for(first, running.external_id, [CenterJobState.RUNNING], 10)
    await first.close()  # the gateway goes away; the job's supervisor does not

    second = LocalConnector("local-a", root, {"cpu-core": 1})
    await second.start()
    try:
        status = await second.status([StatusQuery(running.external_id), StatusQuery(queued.external_id)])
        assert status[running.external_id].state is CenterJobState.RUNNING
        assert status[queued.external_id].state is CenterJobState.QUEUED
        final = await wait_for(second, running.external_id, [CenterJobState.SUCCEEDED], 10)
        assert final.exit_code == 0
        await wait_for(second, queued.external_id, [CenterJobState.SUCCEEDED], 10)
    finally:
        await second.close()


async def test_a_job_whose_supervisor_died_is_reported_failed(tmp_path: Path) -> None:
    root = tmp_path / "center"
    local = LocalConnector("local-b", root, {"cpu-core": 1})
    await local.start()
    try:
        submission = await local.submit(ConnectorContract().spec([PYTHON, "-c", "import time; time.sleep(60)"]))
        await wait_for(local, submission.external_id, [CenterJobState.RUNNING], 10)
        job_dir = root / "jobs" / submission.external_id
        runner_pid = int((job_dir / "runner.pid").read_text().split()[0])
        child_pid = json.loads((job_dir / "child.json").read_text())["pid"]
        os.kill(runner_pid, 9)
        os.killpg(child_pid, 9)
        final = await wait_for(local, submission.external_id, [CenterJobState.FAILED], 20)
        assert final.reason and "LOST" in final.reason
    finally:
        await local.close()


async def test_a_job_s_end_is_told_for_that_job_alone_without_inotify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the job's folder cannot be watched, its supervisor's exit still tells of the end at once,
    and of that job: a look at it, not a full round over every job of the center (``on_activity``)."""
    monkeypatch.setattr(DirectoryWatch, "start", lambda _self: False)
    local = LocalConnector("local-told", tmp_path / "center", {"cpu-core": 2}, poll_interval=3600)
    told: list[list[str]] = []
    activity: list[bool] = []
    local.on_jobs_changed = lambda external_ids: told.append(list(external_ids))
    local.on_activity = lambda: activity.append(True)
    await local.start()
    try:
        assert not local.follows_jobs
        submission = await local.submit(ConnectorContract().spec([PYTHON, "-c", "print(1)"]))
        await eventually(lambda: [submission.external_id] in told, "the job's end told of")
        status = await local.status([StatusQuery(submission.external_id)])
        assert status[submission.external_id].state is CenterJobState.SUCCEEDED
        assert activity == []
    finally:
        await local.close()


async def test_reports_the_caller_has_recorded_are_forgotten(connector: LocalConnector) -> None:
    """A job printing progress for days holds only what it printed since it was last asked about, and
    an ask costs what it returns (before, each ask scanned the job's every report since its start)."""
    script = "for step in range(1, 2001): print('AICN_PROGRESS {\"step\": %d}' % step)"
    submission = await connector.submit(ConnectorContract().spec([PYTHON, "-c", script]))
    final = await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED], 20)
    assert [report.step for report in final.progress] == list(range(1, 2001))  # nothing recorded yet: all of them
    recorded = await connector.status([StatusQuery(submission.external_id, 1500)])
    assert [report.ordinal for report in recorded[submission.external_id].progress] == list(range(1501, 2001))
    # a stale ask (one that read the count before the last was recorded) gets what is still held
    stale = await connector.status([StatusQuery(submission.external_id, 10)])
    assert [report.ordinal for report in stale[submission.external_id].progress] == list(range(1501, 2001))
    done = await connector.status([StatusQuery(submission.external_id, 2000)])
    assert done[submission.external_id].progress == ()
    assert (await connector.status([StatusQuery(submission.external_id)]))[submission.external_id].progress == ()
