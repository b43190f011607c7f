"""LOCAL jobs are isolated by default (`[centers.local] run_as = "auto"`): on a gateway that may switch
users each job runs as the unprivileged user aicn-job and cannot reach other jobs' folders and logs, the
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

from connectors.local.identity import DEFAULT_JOB_USER
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
    assert seen["uid"] == pwd.getpwnam(DEFAULT_JOB_USER).pw_uid and seen["cwd_mode"] == "0o700"
    assert "AICN_ADMIN_TOKEN" not in seen["env"] and set(seen["env"]) <= {
        "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONUNBUFFERED", "AICN_JOB_REFERENCE", "AICN_OWN_DIR",
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
    config = f'[[centers]]\nname = "local"\nkind = "LOCAL"\n[centers.local]\nwork_dir = "{taken}"\n'
    (tmp_path / "aicn.toml").write_text(config)
    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "serve", "--port", "0"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"aicn: configuration: centers.local.work_dir: {taken} is not a directory of the gateway's own user (set work_dir)"
    ]
