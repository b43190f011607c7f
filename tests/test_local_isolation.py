"""LOCAL jobs with `[centers.local] run_as`: a job runs as an unprivileged user of its own and cannot
reach other jobs' folders and logs, the database, the gateway's process or its own supervisor's
records; it is metered by what the supervisor saw."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aicn.settings import LocalConfig
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import JOB, python_job, submit, wait_for_state

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")

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


def system_python(job: dict[str, Any]) -> dict[str, Any]:
    """The job's user cannot run the gateway's own interpreter when it lives under /root (pyenv)."""
    job["command"][0] = "/usr/bin/python3"
    return job


async def test_a_job_cannot_reach_the_gateway_and_is_metered_by_its_supervisor(gateway_factory: Any, tmp_path: Path) -> None:
    center = local_center(price="36000", local=LocalConfig(run_as="aicn-job", work_dir=tmp_path / "work"))
    gateway: Gateway = await gateway_factory(centers=[center])
    data_dir = gateway.runtime.settings.data_dir
    jobs_dir = data_dir / "centers" / "local" / "jobs"
    other = await submit(gateway.client, system_python(python_job("import time; time.sleep(30)", name="other")))
    await wait_for_state(gateway.client, other["id"], {"RUNNING"})
    (other_dir,) = list(jobs_dir.iterdir())
    own_reference = "probe"
    probe = python_job(PROBE, name=own_reference, environment={"AICN_OWN_DIR": str(jobs_dir)})
    probe = system_python(probe)
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
    assert seen["uid"] != 0 and seen["cwd_mode"] == "0o700"
    assert "AICN_ADMIN_TOKEN" not in seen["env"] and set(seen["env"]) <= {
        "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONUNBUFFERED", "AICN_JOB_REFERENCE", "AICN_OWN_DIR",
    }  # fmt: skip
    assert final["usage"]["seconds"] >= 2  # the supervisor's times: the job slept 2 s after its probes
