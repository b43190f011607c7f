"""The connector conformance suite: one set of checks every center kind must pass.

A test module subclasses ``ConnectorContract`` and provides a ``connector`` fixture
(started, and closed afterwards). Nothing in here may know which kind it is testing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

import pytest

from connectors.base import CenterJobState, Connector, JobSpec, JobStatus, StatusQuery
from connectors.errors import JobNotFound, SubmissionRejected
from tests.processes import JOB_PYTHON

PYTHON = JOB_PYTHON

PROGRESS_SCRIPT = """
import json, time
for step in range(1, 4):
    print("working on step", step, flush=True)
    print("AICN_PROGRESS " + json.dumps({"fraction": step / 3, "step": step, "totalSteps": 3,
          "message": f"step {step}", "metrics": {"loss": 1.0 / step}}), flush=True)
    time.sleep(0.4)
print("all done", flush=True)
"""


def new_reference() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


async def wait_for(
    connector: Connector,
    external_id: str,
    states: Iterable[CenterJobState],
    timeout: float,
    progress_after: int = 0,
) -> JobStatus:
    wanted = set(states)
    deadline = time.monotonic() + timeout
    last: JobStatus | None = None
    while time.monotonic() < deadline:
        answer = await connector.status([StatusQuery(external_id, progress_after)])
        last = answer.get(external_id)
        if last is not None and last.state in wanted:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {external_id} did not reach {wanted} in {timeout}s; last status {last}")


class ConnectorContract:
    """Subclass and provide the ``connector`` fixture; the checks below are the contract."""

    #: how long a short job may take from submission to its end on this kind of center
    settle_seconds: float = 30.0
    #: the shortest time limit the center honours, and how long it may take to act on it
    time_limit_seconds: float = 1.5
    time_limit_wait_seconds: float = 20.0
    #: the longest line a job writes in the long-line test
    enormous_line_bytes: int = 16 * 1024 * 1024

    def spec(self, command: list[str], **overrides: object) -> JobSpec:
        fields: dict[str, object] = {
            "reference": new_reference(),
            "name": "contract",
            "command": tuple(command),
            "max_duration_seconds": 120.0,
            "environment": {"AICN_CONTRACT": "yes"},
            "accelerator": "cpu-core",
            "devices": 1,
        }
        fields.update(overrides)
        return JobSpec(**fields)  # type: ignore[arg-type]

    async def test_describe_names_the_center(self, connector: Connector) -> None:
        description = await connector.describe()
        assert description.kind == connector.kind
        assert description.name == connector.name

    async def test_capacity_reports_cpu_cores(self, connector: Connector) -> None:
        capacity = await connector.capacity()
        cores = [entry for entry in capacity if entry.accelerator == "cpu-core"]
        assert cores, capacity
        assert all(0 <= entry.devices_free <= entry.devices_total for entry in capacity)
        assert sum(entry.devices_total for entry in cores) >= 1

    async def test_job_runs_reports_progress_and_succeeds(self, connector: Connector) -> None:
        submission = await connector.submit(self.spec([PYTHON, "-c", PROGRESS_SCRIPT]))
        assert submission.state in {CenterJobState.QUEUED, CenterJobState.STARTING, CenterJobState.RUNNING}
        final = await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], self.settle_seconds)
        assert final.state is CenterJobState.SUCCEEDED, final
        assert final.exit_code == 0
        assert final.finished_at is not None
        fractions = [report.fraction for report in final.progress]
        assert fractions and fractions[-1] == pytest.approx(1.0)
        assert [report.ordinal for report in final.progress] == sorted({report.ordinal for report in final.progress})
        last = final.progress[-1]
        assert last.step == 3 and last.total_steps == 3 and last.message == "step 3"
        assert last.metrics == {"loss": pytest.approx(1 / 3)}
        # asking again after the last ordinal returns no old reports
        again = await connector.status([StatusQuery(submission.external_id, last.ordinal)])
        assert again[submission.external_id].progress == ()
        output = await connector.logs(submission.external_id, tail_lines=1)
        assert output.strip() == "all done"

    async def test_environment_reaches_the_job(self, connector: Connector) -> None:
        script = "import os; print('env=' + os.environ['AICN_CONTRACT'])"
        submission = await connector.submit(self.spec([PYTHON, "-c", script]))
        await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED], self.settle_seconds)
        assert "env=yes" in await connector.logs(submission.external_id, tail_lines=5)

    async def test_failure_carries_the_exit_code(self, connector: Connector) -> None:
        submission = await connector.submit(self.spec([PYTHON, "-c", "import sys; print('failing'); sys.exit(3)"]))
        final = await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], self.settle_seconds)
        assert final.state is CenterJobState.FAILED
        assert final.exit_code == 3
        assert final.reason

    async def test_a_program_that_does_not_exist_fails_with_command_not_found(self, connector: Connector) -> None:
        submission = await connector.submit(self.spec(["/no/such/program", "--flag"]))
        final = await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], self.settle_seconds)
        assert final.state is CenterJobState.FAILED
        assert final.exit_code == 127
        assert (final.reason or "").startswith("COMMAND_NOT_FOUND: cannot start '/no/such/program'"), final.reason

    async def test_cancel_stops_a_running_job(self, connector: Connector) -> None:
        submission = await connector.submit(self.spec([PYTHON, "-c", "import time; time.sleep(120)"]))
        await wait_for(connector, submission.external_id, [CenterJobState.RUNNING], self.settle_seconds)
        await connector.cancel(submission.external_id)
        final = await wait_for(connector, submission.external_id, [CenterJobState.CANCELLED], self.settle_seconds)
        assert final.finished_at is not None
        await connector.cancel(submission.external_id)  # cancelling a finished job changes nothing
        again = await connector.status([StatusQuery(submission.external_id)])
        assert again[submission.external_id].state is CenterJobState.CANCELLED

    async def test_time_limit_ends_the_job(self, connector: Connector) -> None:
        spec = self.spec([PYTHON, "-c", "import time; time.sleep(600)"], max_duration_seconds=self.time_limit_seconds)
        submission = await connector.submit(spec)
        final = await wait_for(
            connector,
            submission.external_id,
            [CenterJobState.FAILED, CenterJobState.CANCELLED, CenterJobState.SUCCEEDED],
            self.time_limit_wait_seconds,
        )
        assert final.state is CenterJobState.FAILED
        assert final.reason and "TIME_LIMIT" in final.reason

    async def test_unknown_job(self, connector: Connector) -> None:
        unknown = "999999999"
        assert await connector.status([StatusQuery(unknown)]) == {}
        with pytest.raises(JobNotFound):
            await connector.cancel(unknown)
        with pytest.raises(JobNotFound):
            await connector.logs(unknown)
        with pytest.raises(JobNotFound):
            await connector.read_log(unknown, 0, 1024)

    async def test_read_log_follows_the_output_in_bounded_steps(self, connector: Connector) -> None:
        script = "import time\nfor i in range(6):\n    print(f'line {i}', flush=True)\n    time.sleep(0.3)\n"
        submission = await connector.submit(self.spec([PYTHON, "-c", script]))
        external_id = submission.external_id
        seen, offset = b"", 0
        deadline = time.monotonic() + self.settle_seconds
        while b"line 5\n" not in seen:  # read while the job writes, 7 bytes at a time
            assert time.monotonic() < deadline, seen
            chunk = await connector.read_log(external_id, offset, 7)
            assert len(chunk.data) <= 7 and chunk.start == offset and chunk.next_offset == offset + len(chunk.data)
            seen, offset = seen + chunk.data, chunk.next_offset
            if not chunk.data:
                await asyncio.sleep(0.1)
        lines = [line for line in seen.decode().splitlines() if line.startswith("line ")]
        assert lines == [f"line {i}" for i in range(6)]
        await wait_for(connector, external_id, [CenterJobState.SUCCEEDED], self.settle_seconds)
        end = await connector.read_log(external_id, -9, 1024)  # from the end: the last 9 bytes
        assert len(end.data) == 9 and end.data.endswith(b"line 5\n"), end
        assert end.next_offset == offset and end.start == offset - len(end.data)
        assert (await connector.read_log(external_id, offset, 1024)).data == b""

    async def test_one_enormous_line_is_read_in_bounded_steps(self, connector: Connector) -> None:
        script = "import sys\nsys.stdout.write('x' * int(sys.argv[1]) + '\\nafter the long line\\n')\n"
        submission = await connector.submit(self.spec([PYTHON, "-c", script, str(self.enormous_line_bytes)]))
        await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED], self.settle_seconds)
        offset, tail = 0, b""
        deadline = time.monotonic() + self.settle_seconds
        while b"after the long line" not in tail:
            assert time.monotonic() < deadline
            started = time.perf_counter()
            chunk = await connector.read_log(submission.external_id, offset, 64 * 1024)
            assert time.perf_counter() - started < 1.0 and len(chunk.data) <= 64 * 1024
            assert chunk.start >= offset  # a center may have dropped old bytes, never answers older ones
            offset, tail = chunk.next_offset, (tail + chunk.data)[-4096:]
            if not chunk.data:
                await asyncio.sleep(0.1)
        assert offset >= self.enormous_line_bytes

    async def test_a_job_larger_than_the_center_is_rejected(self, connector: Connector) -> None:
        with pytest.raises(SubmissionRejected):
            await connector.submit(self.spec([PYTHON, "-c", "pass"], devices=100_000))
        with pytest.raises(SubmissionRejected):
            await connector.submit(self.spec([PYTHON, "-c", "pass"], accelerator="no-such-device"))

    async def test_jobs_beyond_capacity_wait_queued(self, connector: Connector) -> None:
        capacity = {entry.accelerator: entry for entry in await connector.capacity()}
        cores = capacity["cpu-core"].devices_total
        submissions = [await connector.submit(self.spec([PYTHON, "-c", "import time; time.sleep(120)"])) for _ in range(cores + 1)]
        try:
            ids = [submission.external_id for submission in submissions]
            await wait_for(connector, ids[0], [CenterJobState.RUNNING], self.settle_seconds)
            await wait_for(connector, ids[cores - 1], [CenterJobState.RUNNING], self.settle_seconds)
            answer = await connector.status([StatusQuery(external_id) for external_id in ids])
            assert answer[ids[-1]].state is CenterJobState.QUEUED
            free = {entry.accelerator: entry for entry in await connector.capacity()}
            assert free["cpu-core"].devices_free == 0
            await connector.cancel(ids[0])
            await wait_for(connector, ids[-1], [CenterJobState.RUNNING], self.settle_seconds)
        finally:
            for submission in submissions:
                await connector.cancel(submission.external_id)
            for submission in submissions:
                await wait_for(connector, submission.external_id, [CenterJobState.CANCELLED], self.settle_seconds)

    async def test_the_same_reference_twice_is_one_job(self, connector: Connector) -> None:
        spec = self.spec([PYTHON, "-c", "pass"])
        first = await connector.submit(spec)
        second = await connector.submit(spec)
        assert first.external_id == second.external_id
        await wait_for(connector, first.external_id, [CenterJobState.SUCCEEDED], self.settle_seconds)
