"""A SLURM center behind the graph, end to end, next to a LOCAL one (real slurmrestd)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from typing import Any

import pytest

from tests.conftest import Gateway, local_center
from tests.jobs_helpers import CANCEL, PROGRESS_SCRIPT, collect_events, job_state, python_job, submit, wait_for_state
from tests.slurm_helpers import GPU, slurm_center

pytestmark = [pytest.mark.slurm, pytest.mark.parametrize("database", ["postgres"], indirect=True)]


async def center_id(gateway: Gateway, name: str) -> str:
    return next(center.global_id for center in gateway.runtime.registry.all() if center.name == name)


async def test_a_slurm_job_reports_progress_and_succeeds_over_the_subscription(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([local_center(), slurm_center(slurm_output_dir)])
    gql = gateway.client
    job = await submit(gql, python_job(PROGRESS_SCRIPT, name="on-slurm", centerId=await center_id(gateway, "hpc")))
    assert job["center"]["name"] == "hpc"
    events = await asyncio.wait_for(collect_events(gql, job["id"]), 90)
    states = [event["state"] for event in events if event["kind"] == "STATE"]
    assert states[0] == "PENDING" and states[-1] == "SUCCEEDED"
    assert "RUNNING" in states
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    progress = [event["progress"] for event in events if event["kind"] == "PROGRESS"]
    assert progress and progress[-1]["step"] == 3 and progress[-1]["fraction"] == 1.0
    final = await job_state(gql, job["id"])
    assert final["exitCode"] == 0
    logs = await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 1) } } }", {"id": job["id"]})
    assert logs["node"]["logs"].strip() == "done"


async def test_a_failing_slurm_job_ends_failed_with_its_exit_code(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir)])
    job = await submit(gateway.client, python_job("import sys; sys.exit(3)", name="fails"))
    final = await wait_for_state(gateway.client, job["id"], {"FAILED", "SUCCEEDED"}, timeout=60)
    assert final["state"] == "FAILED" and final["exitCode"] == 3


async def test_cancel_a_slurm_job(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir)])
    gql = gateway.client
    job = await submit(gql, python_job("import time; time.sleep(300)", name="cancel-me"))
    await wait_for_state(gql, job["id"], {"RUNNING"}, timeout=60)
    await gql.execute(CANCEL, {"id": job["id"]})
    final = await wait_for_state(gql, job["id"], {"CANCELLED", "FAILED", "SUCCEEDED"}, timeout=60)
    assert final["state"] == "CANCELLED"


async def test_a_time_limited_slurm_job_ends_with_a_clear_reason(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir)])
    job = await submit(gateway.client, python_job("import time; time.sleep(600)", name="too-long", minutes=1))
    final = await wait_for_state(gateway.client, job["id"], {"FAILED", "CANCELLED", "SUCCEEDED"}, timeout=180)
    assert final["state"] == "FAILED"
    assert "TIME_LIMIT" in final["failureReason"]


async def test_gpus_of_the_slurm_center_are_compute_units(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([local_center(), slurm_center(slurm_output_dir)])
    data = await gateway.client.execute(
        """{ centers { edges { node { name kind computeUnits { accelerator { model standardUnits } devicesTotal standardUnitsTotal pricePerUnitHour { amount } } } } } }"""
    )
    by_center = {edge["node"]["name"]: edge["node"] for edge in data["centers"]["edges"]}
    slurm_units = {unit["accelerator"]["model"]: unit for unit in by_center["hpc"]["computeUnits"]}
    assert slurm_units[GPU]["devicesTotal"] == 2
    assert slurm_units[GPU]["standardUnitsTotal"] == round(2 * slurm_units[GPU]["accelerator"]["standardUnits"], 4)
    assert slurm_units[GPU]["pricePerUnitHour"]["amount"] == "2.000000"
    assert slurm_units["cpu-core"]["devicesTotal"] >= 1
    assert by_center["local"]["kind"] == "LOCAL" and by_center["hpc"]["kind"] == "SLURM"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_slurmrestd(port: int) -> subprocess.Popen[bytes]:
    environment = dict(os.environ, SLURM_JWT="daemon")
    return subprocess.Popen(
        [
            "/usr/sbin/slurmrestd",
            "-u",
            "slurmrestd",
            "-g",
            "slurmrestd",
            "-a",
            "rest_auth/jwt",
            "-s",
            "openapi/v0.0.38",
            f"127.0.0.1:{port}",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def test_a_stopped_slurmrestd_costs_only_its_center_and_it_recovers(gateway_factory: Any, slurm_output_dir: str) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = slurm_center(
        slurm_output_dir, url=url, name="flaky-hpc", deadline_seconds=2.0, probe_interval_seconds=0.3, failure_threshold=2
    )
    gateway: Gateway = await gateway_factory([local_center(), config])  # nothing listens yet: refused connections
    gql = gateway.client
    slurm_id = await center_id(gateway, "flaky-hpc")
    query = "{ computeUnits { edges { node { center { name } } } } }"
    body = (await gql.post(query)).json()
    assert [edge["node"]["center"]["name"] for edge in body["data"]["computeUnits"]["edges"]] == ["local"]
    assert [(error["extensions"]["code"], error["extensions"]["center"]) for error in body["errors"]] == [("CENTER_UNAVAILABLE", slurm_id)]

    restd = _start_slurmrestd(port)
    try:
        for _ in range(100):  # the probe closes the breaker once slurmrestd answers
            body = (await gql.post(query)).json()
            if "errors" not in body:
                break
            await asyncio.sleep(0.2)
        names = {edge["node"]["center"]["name"] for edge in body["data"]["computeUnits"]["edges"]}
        assert "errors" not in body and names == {"local", "flaky-hpc"}
    finally:
        os.kill(restd.pid, signal.SIGTERM)
        restd.wait(10)
    body = (await gql.post(query)).json()
    assert [edge["node"]["center"]["name"] for edge in body["data"]["computeUnits"]["edges"]] == ["local"]
    assert body["errors"][0]["extensions"] == {"code": "CENTER_UNAVAILABLE", "center": slurm_id, "centerName": "flaky-hpc"}
    status = await gql.execute("query($id: ID!) { node(id: $id) { ... on ComputeCenter { status { state message } } } }", {"id": slurm_id})
    assert status["node"]["status"]["state"] in {"DEGRADED", "DOWN"}
    assert "SLURM_JWT" not in str(body) and "eyJ" not in str(body)
