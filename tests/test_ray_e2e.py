"""A RAY center behind the graph, end to end, beside LOCAL and SLURM ones (real Ray head, real slurmrestd)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from resolvers.jobs.reconciler import TIME_LIMIT_REASON
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import CANCEL, PROGRESS_SCRIPT, collect_events, job_state, python_job, submit, wait_for_state
from tests.ray_helpers import NPU, RAY_URL, ray_answers, ray_center, run_start_ray, wait_until
from tests.slurm_helpers import GPU, slurm_center

pytestmark = [pytest.mark.ray, pytest.mark.parametrize("database", ["postgres"], indirect=True)]

USAGE = "query($id: ID!) { node(id: $id) { ... on Job { state usage { seconds } events(first: 50) { edges { node { kind } } } } } }"
PLACEMENT = "query($id: ID!) { node(id: $id) { ... on Job { events(first: 50) { edges { node { kind message } } } } } }"
COMPARE = """{ centers { edges { node { name kind computeUnits {
  accelerator { model standardUnits } devicesTotal devicesAvailable pricePerUnitHour { amount } } } } } }"""


def center_id(gateway: Gateway, name: str) -> str:
    return next(center.global_id for center in gateway.runtime.registry.all() if center.name == name)


async def test_three_kinds_side_by_side_and_a_ray_job_end_to_end(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([local_center(price="0.50"), slurm_center(slurm_output_dir), ray_center()])
    gql = gateway.client
    by_center = {edge["node"]["name"]: edge["node"] for edge in (await gql.execute(COMPARE))["centers"]["edges"]}
    assert {name: node["kind"] for name, node in by_center.items()} == {"local": "LOCAL", "hpc": "SLURM", "ray": "RAY"}
    ray_units = {unit["accelerator"]["model"]: unit for unit in by_center["ray"]["computeUnits"]}
    assert ray_units["cpu-core"]["devicesTotal"] == 2 and ray_units[NPU]["devicesTotal"] == 2
    assert ray_units[NPU]["pricePerUnitHour"]["amount"] == "1.500000"
    assert GPU in {unit["accelerator"]["model"] for unit in by_center["hpc"]["computeUnits"]}

    # an NPU only the Ray center has: placement among all three puts it there
    npu = await submit(gql, python_job(PROGRESS_SCRIPT, name="on-ray", request={"accelerator": NPU, "devices": 1, "maxDurationMinutes": 1}))
    assert npu["center"]["name"] == "ray"
    events = await asyncio.wait_for(collect_events(gql, npu["id"]), 60)
    states = [event["state"] for event in events if event["kind"] == "STATE"]
    assert states[0] == "PENDING" and "RUNNING" in states and states[-1] == "SUCCEEDED"
    progress = [event["progress"] for event in events if event["kind"] == "PROGRESS"]
    assert progress and progress[-1]["step"] == 3 and progress[-1]["fraction"] == 1.0
    assert (await job_state(gql, npu["id"]))["exitCode"] == 0
    logs = await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 1) } } }", {"id": npu["id"]})
    assert logs["node"]["logs"].strip() == "done"

    # by centerId, with its environment; then cancelled through the stop endpoint
    script = "import os, time; print('env', os.environ['GREETING'], flush=True); time.sleep(300)"
    job = await submit(gql, python_job(script, name="cancel-me", centerId=center_id(gateway, "ray"), environment={"GREETING": "hi there"}))
    assert job["center"]["name"] == "ray"
    await wait_for_state(gql, job["id"], {"RUNNING"}, timeout=45)
    query = "query($id: ID!) { node(id: $id) { ... on Job { logs(tailLines: 5) } } }"
    for _ in range(100):
        if "env hi there" in (await gql.execute(query, {"id": job["id"]}))["node"]["logs"]:
            break
        await asyncio.sleep(0.1)
    assert "env hi there" in (await gql.execute(query, {"id": job["id"]}))["node"]["logs"]
    await gql.execute(CANCEL, {"id": job["id"]})
    assert (await wait_for_state(gql, job["id"], {"CANCELLED", "FAILED", "SUCCEEDED"}, timeout=45))["state"] == "CANCELLED"


async def test_a_ray_refusal_fails_over(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("local", price="0.90"), ray_center()])
    gql = gateway.client
    # ray is cheaper, but no node of it has 100 TB of memory: it refuses, the local center runs the job
    huge = await submit(gql, python_job("print('ran')", name="huge", request={"devices": 1, "memoryGb": 100_000, "maxDurationMinutes": 5}))
    assert huge["center"]["name"] == "local"
    messages = [
        e["node"]["message"]
        for e in (await gql.execute(PLACEMENT, {"id": huge["id"]}))["node"]["events"]["edges"]
        if e["node"]["kind"] == "PLACEMENT"
    ]
    assert (
        messages[0].startswith("placed on ray")
        and "ray failed (CENTER_REJECTED" in messages[1]
        and messages[2].startswith("placed on local")
    )
    assert (await wait_for_state(gql, huge["id"], {"SUCCEEDED", "FAILED"}))["state"] == "SUCCEEDED"


async def test_the_gateway_stops_a_ray_job_at_its_time_limit_and_meters_it_once(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([ray_center()])
    gql = gateway.client
    name = f"too-long-{uuid.uuid4().hex[:8]}"
    limited = await submit(gql, python_job("import time; time.sleep(600)", name=name, minutes=0.05, centerId=center_id(gateway, "ray")))
    running = await wait_for_state(gql, limited["id"], {"RUNNING", "FAILED", "CANCELLED", "SUCCEEDED"}, timeout=45)
    assert running["state"] == "RUNNING"
    # 3 s of limit; the node-side backstop would act only 60 s later
    final = await wait_for_state(gql, limited["id"], {"FAILED", "CANCELLED", "SUCCEEDED"}, timeout=20)
    assert final["state"] == "FAILED" and final["failureReason"] == TIME_LIMIT_REASON, final
    assert final["exitCode"] is None
    ran = datetime.fromisoformat(final["finishedAt"]) - datetime.fromisoformat(final["startedAt"])
    assert timedelta(seconds=3) <= ran < timedelta(seconds=10), ran
    # stopped through the Jobs API's stop endpoint: Ray itself reports it STOPPED
    (record,) = [job for job in httpx.get(f"{RAY_URL}/api/jobs/", timeout=10).json() if job["metadata"].get("aicn_name") == name]
    await asyncio.to_thread(
        wait_until,
        lambda: httpx.get(f"{RAY_URL}/api/jobs/{record['submission_id']}", timeout=10).json()["status"] == "STOPPED",
        30,
        "Ray did not stop the job",
    )
    # metered once, for the limit's 3 s, whatever Ray reports afterwards
    await gateway.runtime.reconcilers[0].reconcile_once()
    metered = (await gql.execute(USAGE, {"id": limited["id"]}))["node"]
    assert [edge["node"]["kind"] for edge in metered["events"]["edges"]].count("USAGE") == 1
    assert metered["usage"]["seconds"] == 3 and metered["state"] == "FAILED"


def _gcs_port_free() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", 6390)) != 0


async def test_a_stopped_ray_head_costs_only_its_center_and_it_recovers(gateway_factory: Any) -> None:
    config = ray_center(deadline_seconds=2.0, probe_interval_seconds=0.3, failure_threshold=2)
    gateway: Gateway = await gateway_factory([local_center(), config], vanished_grace_seconds=1.0)
    gql = gateway.client
    ray_id = center_id(gateway, "ray")
    query = "{ computeUnits { edges { node { center { name } } } } }"
    # a job running when the head goes: the restarted head has forgotten it, so it ends LOST
    doomed = await submit(gql, python_job("import time; time.sleep(300)", name="doomed", minutes=10, centerId=ray_id))
    await wait_for_state(gql, doomed["id"], {"RUNNING"}, timeout=45)
    try:
        await asyncio.to_thread(run_start_ray, "stop")
        await asyncio.to_thread(wait_until, lambda: not ray_answers() and _gcs_port_free(), 30, "the Ray head did not stop")
        body = (await gql.post(query)).json()
        assert {edge["node"]["center"]["name"] for edge in body["data"]["computeUnits"]["edges"]} == {"local"}
        assert [(e["extensions"]["code"], e["extensions"]["center"]) for e in body["errors"]] == [("CENTER_UNAVAILABLE", ray_id)]
        # a job placed meanwhile goes to the center that is up
        job = await submit(gql, python_job("print('while ray is down')", name="meanwhile"))
        assert job["center"]["name"] == "local"
    finally:
        await asyncio.to_thread(run_start_ray)
    for _ in range(150):  # the probe closes the breaker once the head answers again
        body = (await gql.post(query)).json()
        if "errors" not in body:
            break
        await asyncio.sleep(0.2)
    assert "errors" not in body
    assert {edge["node"]["center"]["name"] for edge in body["data"]["computeUnits"]["edges"]} == {"local", "ray"}
    job = await submit(gql, python_job("print('back')", name="after", centerId=ray_id))
    assert (await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"}, timeout=45))["state"] == "SUCCEEDED"
    lost = await wait_for_state(gql, doomed["id"], {"FAILED", "SUCCEEDED", "CANCELLED"}, timeout=30)
    assert lost["state"] == "FAILED" and lost["failureReason"].startswith("LOST")
