"""LOCAL supervisors started in advance (spares), and how a supervisor is recognised after a restart."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.base import CenterJobState
from connectors.local import connector as local_connector
from connectors.local.connector import RUNNER, LocalConnector, Supervisor
from connectors.local.runner import SPARE
from tests.connector_contract import PYTHON, ConnectorContract, wait_for

ROOT = Path(__file__).resolve().parent.parent
#: a job that records each run of itself, then waits for the test's word (a file) to end
WAITING_JOB = (
    "import os, sys, time\nopen(sys.argv[1], 'a').write('ran\\n')\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.02)\nprint('done')\n"
)


def exited_within(pid: int, seconds: float) -> bool:
    """True once ``pid`` (any process, not only a child) has exited, within ``seconds``."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([descriptor], [], [], seconds)
        return bool(readable)
    finally:
        os.close(descriptor)


def spare_of(local: LocalConnector) -> subprocess.Popen[bytes]:
    assert local._spare is not None, "the connector keeps a spare supervisor once started"
    return local._spare.process


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalConnector]:
    connector = LocalConnector("spare-test", tmp_path / "center", {"cpu-core": 2}, run_as="none")
    await connector.start()
    yield connector
    await connector.close()


async def test_a_job_handed_to_the_spare_runs_once_and_succeeds(local: LocalConnector, tmp_path: Path) -> None:
    spare = spare_of(local)
    runs, go = tmp_path / "runs", tmp_path / "go"
    go.touch()
    submission = await local.submit(ConnectorContract().spec([PYTHON, "-c", WAITING_JOB, str(runs), str(go)]))
    final = await wait_for(local, submission.external_id, [CenterJobState.SUCCEEDED], 20)
    assert final.exit_code == 0
    job_dir = local.root / "jobs" / submission.external_id
    assert Supervisor.parse((job_dir / "runner.pid").read_text()).pid == spare.pid
    assert "done" in (job_dir / "output.log").read_text()
    assert runs.read_text() == "ran\n"
    assert exited_within(spare.pid, 10)  # its one job done, the spare is gone: it takes no second one
    assert spare_of(local).pid != spare.pid  # and a new one waits for the next job


def test_a_spare_runs_the_first_job_it_is_sent_and_no_other(tmp_path: Path) -> None:
    directories = []
    for name in ("first", "second"):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "spec.json").write_text(
            json.dumps({"command": [PYTHON, "-c", "print(1)"], "environment": {}, "max_duration_seconds": 60})
        )
        directories.append(directory)
    spare = subprocess.Popen([sys.executable, "-S", str(RUNNER), SPARE], stdin=subprocess.PIPE, start_new_session=True)
    assert spare.stdin is not None
    spare.stdin.write(b"".join(os.fsencode(directory) + b"\n" for directory in directories))
    spare.stdin.close()
    assert spare.wait(timeout=20) == 0
    assert (directories[0] / "result.json").exists()
    assert not (directories[1] / "result.json").exists()
    assert not (directories[1] / "output.log").exists()


async def test_a_spare_exits_when_its_connector_closes(tmp_path: Path) -> None:
    local = LocalConnector("spare-close", tmp_path / "center", {"cpu-core": 1}, run_as="none")
    await local.start()
    spare = spare_of(local)
    await local.close()
    assert spare.returncode == 0
    assert local._spare is None


def test_a_spare_exits_when_its_gateway_dies(tmp_path: Path) -> None:
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from connectors.local.connector import LocalConnector\n"
        "async def main():\n"
        "    local = LocalConnector('spare-orphan', Path(sys.argv[1]), {'cpu-core': 1}, run_as='none')\n"
        "    await local.start()\n"
        "    print(local._spare.process.pid, flush=True)\n"
        "    sys.stdin.read()\n"
        "asyncio.run(main())\n"
    )
    gateway = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "center")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    assert gateway.stdout is not None
    spare_pid = int(gateway.stdout.readline())
    try:
        assert not exited_within(spare_pid, 0)
        gateway.kill()  # no close, no goodbye: only its pipe's end tells the spare
        gateway.wait()
        assert exited_within(spare_pid, 10)
    finally:
        if not exited_within(spare_pid, 0):
            os.kill(spare_pid, signal.SIGKILL)


async def test_a_dead_spare_gives_way_to_a_supervisor_started_for_the_job(local: LocalConnector, tmp_path: Path) -> None:
    dead = spare_of(local)
    dead.kill()
    assert exited_within(dead.pid, 10)  # a zombie until the connector looks
    submission = await local.submit(ConnectorContract().spec([PYTHON, "-c", "print('fresh')"]))
    final = await wait_for(local, submission.external_id, [CenterJobState.SUCCEEDED], 20)
    assert final.exit_code == 0
    job_dir = local.root / "jobs" / submission.external_id
    assert Supervisor.parse((job_dir / "runner.pid").read_text()).pid != dead.pid
    assert "fresh" in (job_dir / "output.log").read_text()


async def test_a_spare_that_dies_as_it_is_handed_the_job_gives_way_too(local: LocalConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = spare_of(local)
    dead.kill()
    assert exited_within(dead.pid, 10)
    monkeypatch.setattr(dead, "poll", lambda: None)  # fault: it dies after the connector's look, before the write
    submission = await local.submit(ConnectorContract().spec([PYTHON, "-c", "print('fresh')"]))
    final = await wait_for(local, submission.external_id, [CenterJobState.SUCCEEDED], 20)
    assert final.exit_code == 0
    job_dir = local.root / "jobs" / submission.external_id
    assert Supervisor.parse((job_dir / "runner.pid").read_text()).pid != dead.pid


async def test_a_job_started_through_a_spare_is_reattached_after_a_restart(tmp_path: Path) -> None:
    root, runs, go = tmp_path / "center", tmp_path / "runs", tmp_path / "go"
    first = LocalConnector("spare-restart", root, {"cpu-core": 1}, run_as="none")
    await first.start()
    spare = spare_of(first)
    submission = await first.submit(ConnectorContract().spec([PYTHON, "-c", WAITING_JOB, str(runs), str(go)]))
    await wait_for(first, submission.external_id, [CenterJobState.RUNNING], 20)
    await first.close()
    second = LocalConnector("spare-restart", root, {"cpu-core": 1}, run_as="none")
    await second.start()
    try:
        assert spare.pid not in second._children  # re-attached by its runner.pid, not as a child
        assert (await wait_for(second, submission.external_id, [CenterJobState.RUNNING], 5)).state is CenterJobState.RUNNING
        go.touch()
        final = await wait_for(second, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], 20)
        assert final.state is CenterJobState.SUCCEEDED, final.reason
        assert runs.read_text() == "ran\n"
    finally:
        await second.close()


async def test_an_older_gateways_pid_only_runner_pid_is_still_reattached(tmp_path: Path) -> None:
    root, runs, go = tmp_path / "center", tmp_path / "runs", tmp_path / "go"
    first = LocalConnector("spare-old", root, {"cpu-core": 1}, run_as="none")
    await first.start()
    spare = spare_of(first)
    spare.kill()  # its job's supervisor is then started as an older gateway started every one: for its job
    assert exited_within(spare.pid, 10)
    submission = await first.submit(ConnectorContract().spec([PYTHON, "-c", WAITING_JOB, str(runs), str(go)]))
    await wait_for(first, submission.external_id, [CenterJobState.RUNNING], 20)
    await first.close()
    pid_file = root / "jobs" / submission.external_id / "runner.pid"
    pid_file.write_text(str(Supervisor.parse(pid_file.read_text()).pid))  # what an older gateway wrote
    second = LocalConnector("spare-old", root, {"cpu-core": 1}, run_as="none")
    await second.start()
    try:
        assert (await wait_for(second, submission.external_id, [CenterJobState.RUNNING], 5)).state is CenterJobState.RUNNING
        go.touch()
        final = await wait_for(second, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], 20)
        assert final.state is CenterJobState.SUCCEEDED, final.reason
    finally:
        await second.close()


@pytest.mark.parametrize("pid_only", [False, True])
async def test_an_unrelated_process_with_the_supervisors_pid_is_not_taken_for_it(tmp_path: Path, pid_only: bool) -> None:
    root = tmp_path / "center"
    first = LocalConnector("spare-recycled", root, {"cpu-core": 1}, run_as="none")
    await first.start()
    await first.close()
    job_dir = root / "jobs" / "recycled"
    job_dir.mkdir()
    (job_dir / "spec.json").write_text('{"accelerator": "cpu-core", "devices": 1, "queued_at_ns": 1}')
    stranger = subprocess.Popen(["sleep", "60"])  # alive, with the pid the supervisor had
    try:
        genuine = Supervisor.of(stranger.pid)
        assert genuine is not None and local_connector._runner_alive(genuine, job_dir)
        # the supervisor that had this pid started earlier (pid-only: its command line named the job)
        ticks, boot = genuine.started.split() if genuine.started else ("", "")
        recorded = str(stranger.pid) if pid_only else Supervisor(stranger.pid, f"{int(ticks) - 1} {boot}").text()
        (job_dir / "runner.pid").write_text(recorded)
        second = LocalConnector("spare-recycled", root, {"cpu-core": 1}, run_as="none")
        await second.start()
        try:
            final = await wait_for(second, "recycled", [CenterJobState.FAILED], 10)
            assert final.reason and final.reason.startswith("LOST")
            assert (await second.capacity())[0].devices_free == 1
        finally:
            await second.close()
        assert stranger.poll() is None  # and it is left alone
    finally:
        stranger.kill()
        stranger.wait()
