"""LOCAL jobs are isolated by default (`[centers.local] run_as = "auto"`): on a gateway that may switch
users each job runs as an unprivileged uid of its own and cannot reach other jobs' folders and logs, the
database, the gateway's process or its own supervisor's records; it is metered by what the supervisor
saw. A gateway without the right to switch users says so at start: in one error line for an explicit
`run_as`, in one warning line for "auto"."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from connectors.local.identity import DEFAULT_UID_RANGE
from tests.conftest import DatabaseChoice, Gateway, local_center
from tests.jobs_helpers import JOB, python_job, submit, wait_for_state
from tests.served_gateway import ServedGateway, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")

#: run the gateway as root without the right to switch users (as in a container with those capabilities dropped)
WITHOUT_SETUID = ["setpriv", "--inh-caps=-setuid", "--bounding-set=-setuid", "--"]

PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    data, other, gateway, database = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tries = {
        "read database": lambda: open(database, "rb").read(1),
        "write database": lambda: open(database, "ab").write(b"x"),
        "list data": lambda: os.listdir(data),
        "read other spec": lambda: open(os.path.join(other, "spec.json")).read(),
        "write other log": lambda: open(os.path.join(other, "output.log"), "a").write("x"),
        "read gateway environ": lambda: open(f"/proc/{gateway}/environ", "rb").read(),
        "write own result": lambda: open(os.path.join(os.environ["AICN_OWN_DIR"], "result.json"), "w").write("{}"),
        "signal gateway": lambda: os.kill(gateway, 0),
    }
    outcome = {}
    for name, attempt in tries.items():
        try:
            attempt()
            outcome[name] = "allowed"
        except (PermissionError, ProcessLookupError):
            outcome[name] = "denied"
    outcome["uid"] = os.getuid()
    outcome["env"] = sorted(os.environ)
    outcome["cwd_mode"] = oct(os.stat(".").st_mode & 0o777)
    print("PROBE " + json.dumps(outcome), flush=True)
    time.sleep(2)
    """
)


async def test_by_default_a_job_cannot_reach_the_gateway_and_is_metered_by_its_supervisor(gateway_factory: Any) -> None:
    center = local_center(price="36000")  # no [centers.local] table: run_as = "auto"
    gateway: Gateway = await gateway_factory(centers=[center])
    data_dir = gateway.runtime.settings.data_dir
    assert data_dir.stat().st_mode & 0o777 == 0o700
    jobs_dir = data_dir / "centers" / "local" / "jobs"
    other = await submit(gateway.client, python_job("import time; time.sleep(30)", name="other"))
    await wait_for_state(gateway.client, other["id"], {"RUNNING"})
    (other_dir,) = list(jobs_dir.iterdir())
    probe = python_job(PROBE, name="probe", environment={"AICN_OWN_DIR": str(jobs_dir)})
    url = gateway.runtime.settings.resolved_database_url
    database = url.split(":///", 1)[1] if url.startswith("sqlite") else str(data_dir / "aicn.db")
    assert not url.startswith("sqlite") or Path(database).exists()
    probe["command"] += [str(data_dir), str(other_dir), str(os.getpid()), database]
    job = await submit(gateway.client, probe)
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"}, timeout=30)
    final = (
        await gateway.client.execute(JOB.replace("failureReason", "failureReason logs(tailLines: 5) usage { seconds }"), {"id": job["id"]})
    )["node"]
    line = next(line for line in final["logs"].splitlines() if line.startswith("PROBE "))
    seen = json.loads(line.removeprefix("PROBE "))
    denied = {name: value for name, value in seen.items() if value in ("allowed", "denied")}
    assert set(denied.values()) == {"denied"}, denied
    assert DEFAULT_UID_RANGE[0] <= seen["uid"] <= DEFAULT_UID_RANGE[1] and seen["cwd_mode"] == "0o700"
    assert "AICN_ADMIN_TOKEN" not in seen["env"] and set(seen["env"]) <= {
        "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONUNBUFFERED", "AICN_JOB_REFERENCE", "AICN_OWN_DIR",
        "AICN_INPUT_DIR", "AICN_OUTPUT_DIR",
    }  # fmt: skip
    assert final["usage"]["seconds"] >= 2  # the supervisor's times: the job slept 2 s after its probes


def test_an_explicit_job_user_without_the_right_to_switch_fails_the_start_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "aicn.toml").write_text('[[centers]]\nname = "local"\nkind = "LOCAL"\n[centers.local]\nrun_as = "aicn-job"\n')
    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    command = [*WITHOUT_SETUID, sys.executable, "-m", "aicn.cli", "serve", "--port", "0"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("aicn: configuration: centers.local.run_as = 'aicn-job': switching to another user for each job needs")
    assert "aicn_" not in done.stdout + done.stderr  # no admin token made: the check runs before anything is created


async def test_auto_without_the_right_to_switch_warns_once_and_runs_jobs_as_the_gateway(database: DatabaseChoice, tmp_path: Path) -> None:
    gateway = ServedGateway(write_config(tmp_path, database.url or "", database.schema), wrapper=WITHOUT_SETUID)
    await gateway.start()
    try:
        job = await submit(gateway.client, python_job("import os; print('uid', os.getuid())"))
        await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
        logs = (await gateway.client.execute("query($id: ID!) { node(id: $id) { ... on Job { logs } } }", {"id": job["id"]}))["node"][
            "logs"
        ]
        assert "uid 0" in logs  # unisolated, as the warning said
    finally:
        await gateway.stop()
    warnings = [line for line in gateway.log.read_text().splitlines() if "jobs run as the gateway's own user" in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0] and "LOCAL center(s) local" in warnings[0] and 'run_as = "none"' in warnings[0]


def test_a_work_dir_someone_else_made_first_fails_the_start_in_one_line(tmp_path: Path) -> None:
    taken = tmp_path / "work"
    taken.mkdir()
    os.chown(taken, pwd.getpwnam("nobody").pw_uid, -1)  # as a local user could in the shared /tmp
    done = _serve(tmp_path, f'[[centers]]\nname = "local"\nkind = "LOCAL"\n[centers.local]\nwork_dir = "{taken}"\n')
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"aicn: configuration: centers.local.work_dir: {taken} is not a directory of the gateway's own user (set work_dir)"
    ]


def _serve(folder: Path, config: str) -> subprocess.CompletedProcess[str]:
    """`aicn serve` with ``config`` as its aicn.toml, in ``folder``, to its end (a start that fails)."""
    (folder / "aicn.toml").write_text(config)
    env = {"AICN_DATA_DIR": str(folder / "data"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "aicn.cli", "serve", "--port", "0"]
    return subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, timeout=60)


NEIGHBOUR = textwrap.dedent(
    """
    import errno, json, os, pathlib, sys, time
    me, signals = sys.argv[1], pathlib.Path(sys.argv[2])
    out = pathlib.Path(os.environ["AICN_OUTPUT_DIR"])
    (out / "result.txt").write_text(me)
    pathlib.Path("secret.txt").write_text(me)
    print("READY " + json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "work": os.getcwd(), "output": str(out)}), flush=True)
    while not (signals / "go.json").exists():
        time.sleep(0.05)
    other = json.loads((signals / "go.json").read_text())[me]
    def attempt(action):
        try:
            action()
            return "allowed"
        except OSError as error:
            return errno.errorcode[error.errno]
    tries = {}
    for kind in ("work", "output"):
        folder = pathlib.Path(other[kind])
        tries[f"list {kind}"] = attempt(lambda: os.listdir(folder))
        tries[f"read {kind}"] = attempt(lambda: (folder / ("secret.txt" if kind == "work" else "result.txt")).read_text())
        tries[f"write {kind}"] = attempt(lambda: (folder / "intruder.txt").write_text(me))
    print("PROBE " + json.dumps(tries), flush=True)
    while not (signals / "done").exists():  # both probe while both run
        time.sleep(0.05)
    """
)

DOWNLOAD_JOB = "query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 20) outputDataset { id } } } }"


def _logged(logs: str, tag: str) -> dict[str, Any]:
    return json.loads(next(line for line in logs.splitlines() if line.startswith(tag + " ")).removeprefix(tag + " "))


async def test_two_accounts_jobs_run_as_uids_of_their_own_and_cannot_reach_each_others_folders(gateway: Gateway) -> None:
    import httpx

    from tests.processes import folder_jobs_can_read
    from tests.test_auth import new_account
    from tests.waiting import eventually

    _, _, client_b = await new_account(gateway, "neighbour")
    with folder_jobs_can_read() as signals:
        jobs = {}
        for name, client in (("a", gateway.client), ("b", client_b)):
            spec = python_job(NEIGHBOUR, name=name, outputDatasetName=f"out-{name}")
            spec["command"] += [name, str(signals)]
            jobs[name] = (client, await submit(client, spec))

        async def logged(name: str, tag: str) -> dict[str, Any] | None:
            client, job = jobs[name]
            logs = (await client.execute(DOWNLOAD_JOB, {"id": job["id"]}))["node"]["logs"] or ""
            return _logged(logs, tag) if f"{tag} " in logs else None

        seen = {name: await eventually(lambda name=name: logged(name, "READY"), f"job {name} ready", timeout=30) for name in jobs}
        (signals / "go.json").write_text(json.dumps({"a": seen["b"], "b": seen["a"]}))
        probed = {name: await eventually(lambda name=name: logged(name, "PROBE"), f"job {name} probed", timeout=30) for name in jobs}
        (signals / "done").touch()
        for client, job in jobs.values():
            await wait_for_state(client, job["id"], {"SUCCEEDED"}, timeout=30)

    low, high = DEFAULT_UID_RANGE
    assert seen["a"]["uid"] != seen["b"]["uid"] and all(low <= s["uid"] <= high and s["gid"] == s["uid"] for s in seen.values())
    assert seen["a"]["groups"] == seen["b"]["groups"] == []
    for name, (client, job) in jobs.items():
        assert set(probed[name].values()) == {"EACCES"}, (name, probed[name])
        final = (await client.execute(DOWNLOAD_JOB, {"id": job["id"]}))["node"]
        # afterwards the output is the gateway's again: registered, downloadable, readable, and no longer the job uid's
        output = Path(seen[name]["output"])
        assert output.stat().st_uid == os.geteuid() and (output / "result.txt").stat().st_uid == os.geteuid()
        assert Path(seen[name]["work"]).stat().st_uid == os.geteuid()
        token = client.token
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            download = await http.get(f"/datasets/{final['outputDataset']['id']}/download", headers={"authorization": f"Bearer {token}"})
        assert download.status_code == 200 and name.encode() in download.content and b"intruder" not in download.content


ESCAPER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    leftover, linger = sys.argv[1], float(sys.argv[2])
    open(leftover, "w").write("left behind")
    daemon = subprocess.Popen(["sleep", "300"], start_new_session=True)  # out of the job's process group
    print("DAEMON", daemon.pid, flush=True)
    time.sleep(linger)
    """
)


@pytest.mark.parametrize("end", ["SUCCEEDED", "CANCELLED"])
async def test_a_job_leaves_no_process_and_no_file_in_shared_folders_behind(gateway: Gateway, end: str) -> None:
    import secrets

    from tests.jobs_helpers import CANCEL
    from tests.waiting import eventually

    leftover = Path("/tmp") / f"aicn-test-leftover-{secrets.token_hex(4)}"
    spec = python_job(ESCAPER, name="escaper")
    spec["command"] += [str(leftover), "0" if end == "SUCCEEDED" else "300"]
    job = await submit(gateway.client, spec)

    async def daemon_pid() -> int | None:
        logs = (await gateway.client.execute(DOWNLOAD_JOB, {"id": job["id"]}))["node"]["logs"] or ""
        return next((int(line.split()[1]) for line in logs.splitlines() if line.startswith("DAEMON ")), None)

    daemon = await eventually(daemon_pid, "the job started its daemon", timeout=30)
    if end == "CANCELLED":
        assert _alive(daemon) and leftover.exists()
        await gateway.client.execute(CANCEL, {"id": job["id"]})
    await wait_for_state(gateway.client, job["id"], {end}, timeout=30)
    assert not _alive(daemon), "the job's daemon outlived it"
    assert not leftover.exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def live_job(folder: Path) -> Path:
    """A job folder as the LOCAL connector leaves it while the job has not ended."""
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text("{}")
    return folder


def test_two_gateways_on_one_host_never_give_one_uid_to_two_live_jobs(tmp_path: Path) -> None:
    from connectors.errors import SubmissionRejected
    from connectors.local.identity import UidRange
    from connectors.local.uids import UidAllocator

    first = DEFAULT_UID_RANGE[1] - 2
    uids = UidRange(first, first + 1)
    claims = tmp_path / "claims"
    one, other = UidAllocator(uids, "local", claims=claims), UidAllocator(uids, "local", claims=claims)
    queued = live_job(tmp_path / "one" / "queued")  # no process runs as its uid yet
    assert one.allocate(queued) == first
    assert other.allocate(live_job(tmp_path / "other" / "a")) == first + 1  # not ``first``: the other gateway's claim
    with pytest.raises(SubmissionRejected):
        other.allocate(live_job(tmp_path / "other" / "b"))
    (queued / "result.json").write_text("{}")  # its job ended, and that gateway never said so (it crashed)
    assert other.allocate(live_job(tmp_path / "other" / "c")) == first
    assert (claims / str(first)).stat().st_mode & 0o777 == 0o600


async def test_a_uid_is_not_given_again_while_a_process_runs_as_it_nor_across_a_restart(tmp_path: Path) -> None:
    from connectors.base import CenterJobState
    from connectors.errors import SubmissionRejected
    from connectors.local.connector import LocalConnector
    from connectors.local.identity import UidRange
    from connectors.local.uids import UidAllocator
    from tests.connector_contract import ConnectorContract, wait_for
    from tests.processes import JOB_PYTHON

    first = DEFAULT_UID_RANGE[1] - 1
    squatter = subprocess.Popen(["sleep", "300"], user=first, group=first, extra_groups=[])
    try:
        allocator = UidAllocator(UidRange(first, first + 1), "local", claims=tmp_path / "claims")
        assert allocator.allocate(live_job(tmp_path / "a")) == first + 1  # ``first`` still has a process
        with pytest.raises(SubmissionRejected):
            allocator.allocate(live_job(tmp_path / "b"))
    finally:
        squatter.kill()
        squatter.wait()
    allocator.release(first + 1, tmp_path / "a")
    assert allocator.allocate(live_job(tmp_path / "c")) == first

    contract = ConnectorContract()
    sleeper = contract.spec([JOB_PYTHON, "-c", "import os, time; print(os.getuid(), flush=True); time.sleep(60)"])
    before = LocalConnector("local", tmp_path / "center", {"cpu-core": 2}, job_uid_range=(first, first + 1))
    await before.start()
    running = await before.submit(sleeper)
    await wait_for(before, running.external_id, [CenterJobState.RUNNING], 10)
    await before.close()  # the gateway goes; its job's supervisor stays
    after = LocalConnector("local", tmp_path / "center", {"cpu-core": 2}, job_uid_range=(first, first + 1))
    await after.start()
    try:
        second = await after.submit(contract.spec([JOB_PYTHON, "-c", "import os; print(os.getuid())"]))
        await wait_for(after, second.external_id, [CenterJobState.SUCCEEDED], 15)
        uids = [int((tmp_path / "center" / "jobs" / s.external_id / "output.log").read_text().split()[0]) for s in (running, second)]
        assert uids[0] != uids[1] and set(uids) == {first, first + 1}
    finally:
        await after.cancel(running.external_id)
        await wait_for(after, running.external_id, [CenterJobState.CANCELLED], 15)
        await after.close()


async def test_one_uid_serves_jobs_one_after_another_and_an_ended_job_s_claim_is_emptied(tmp_path: Path) -> None:
    """An ended job's uid is this gateway's to give again at once; its claim file is emptied in a
    worker thread (the loop does no file work for it), and a new claim is never emptied by the old's."""
    from connectors.base import CenterJobState
    from connectors.local.connector import LocalConnector
    from connectors.local.uids import HOST_CLAIMS
    from tests.connector_contract import ConnectorContract, wait_for
    from tests.processes import JOB_PYTHON

    uid = DEFAULT_UID_RANGE[1] - 3
    contract = ConnectorContract()
    local = LocalConnector("local", tmp_path / "center", {"cpu-core": 2}, job_uid_range=(uid, uid))
    await local.start()
    try:
        ended = []
        for _ in range(3):  # each submitted the moment the one before has ended
            job = await local.submit(contract.spec([JOB_PYTHON, "-c", "import os; print(os.getuid())"]))
            await wait_for(local, job.external_id, [CenterJobState.SUCCEEDED], 15)
            ended.append(job.external_id)
    finally:
        await local.close()  # waits for the claims being emptied
    outputs = [(tmp_path / "center" / "jobs" / external_id / "output.log").read_text().split() for external_id in ended]
    assert outputs == [[str(uid)]] * 3
    assert (HOST_CLAIMS / str(uid)).read_text() == ""


@pytest.mark.parametrize("which", ["private", "without onnxruntime"])
def test_a_services_python_the_jobs_users_cannot_use_fails_the_start_in_one_line(tmp_path: Path, which: str) -> None:
    if which == "private":  # a Python in a folder only the gateway's user may enter (as a pyenv under /root)
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        python = private / "python3"
        python.symlink_to("/usr/bin/python3")
        expected = "Permission denied"
    else:
        python, expected = Path("/usr/bin/python3"), "onnxruntime"
    done = _serve(tmp_path, f'[services]\npython = "{python}"\n\n[[centers]]\nname = "local"\nkind = "LOCAL"\n')
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"aicn: configuration: services.python = '{python}': cannot run the built-in ONNX runner: uid 65534"), line
    assert expected in line and "aicn_" not in done.stdout + done.stderr


def test_preparing_a_job_area_again_leaves_folders_handed_to_a_job_uid_private(tmp_path: Path) -> None:
    from resolvers.data.areas import JobArea

    area = JobArea(tmp_path, "job-1")
    area.prepare()
    uid = DEFAULT_UID_RANGE[0]
    for folder in (area.input_dir, area.output_dir):  # as the LOCAL center hands them to a running job
        os.chown(folder, uid, uid)
        folder.chmod(0o700)
    area.prepare()  # a submission found again after a restart prepares the area once more
    assert [oct(folder.stat().st_mode & 0o777) for folder in (area.input_dir, area.output_dir)] == ["0o700", "0o700"]
