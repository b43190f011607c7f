"""Inference services on the real SLURM center: a dataset, a training job on the cluster that
exports its scikit-learn model to ONNX in its AICN_OUTPUT_DIR, the model it registers served by
the built-in runner as a long-running Slurm job (reached at its node's address), invoked
through GraphQL and HTTP, stopped, and metered once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from aicn.settings import ServicesConfig
from tests.conftest import Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.service_helpers import STOP, TRAIN_SCRIPT, collect_service_events, deploy, invoke, wait_for_service
from tests.slurm_helpers import slurm_center
from tests.waiting import eventually

pytestmark = [pytest.mark.slurm, pytest.mark.parametrize("database", ["postgres"], indirect=True)]

FAST = ServicesConfig(tick_seconds=0.2, health_interval_seconds=1.0)
DATASET = """mutation($uri: String!) { registerDataset(input: {name: "points", uri: $uri}) { dataset { id } userErrors { code } } }"""
TRAINED = "query($id: ID!) { node(id: $id) { ... on Job { outputModel { id uri trainedOn { id } } } } }"
ACCRUED = "query($id: ID!) { node(id: $id) { ... on InferenceService { replicaJobs { costSoFar { amount } } } } }"
USAGE = """query($id: ID!) { node(id: $id) { ... on InferenceService { center { name }
  usage { edges { node { seconds standardUnitHours amount { amount } job { name center { name } } } } } } } }"""


async def test_train_deploy_invoke_and_stop_on_slurm(gateway_factory: Any, slurm_output_dir: str, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir)], services=FAST, data_import_roots=[tmp_path])
    gql = gateway.client
    points = tmp_path / "points.csv"
    points.write_text("x,y\n1,1\n")
    dataset = (await gql.execute(DATASET, {"uri": points.as_uri()}))["registerDataset"]["dataset"]["id"]
    training = python_job(
        TRAIN_SCRIPT, name="train-on-slurm", minutes=3, kind="TRAINING", outputModelName="slurm-model", inputDatasetIds=[dataset]
    )
    training["command"][0] = sys.executable  # scikit-learn and skl2onnx are the gateway's test extras
    job = await submit(gql, training)
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=120)
    model = (await gql.execute(TRAINED, {"id": job["id"]}))["node"]["outputModel"]
    assert model["trainedOn"] == [{"id": dataset}]

    service = await deploy(gql, modelId=model["id"], name="on-slurm", request={"maxDurationMinutes": 10, "devices": 1})
    assert service["center"]["name"] == "hpc"
    await wait_for_service(gql, service["id"], {"READY"}, timeout=120, ready=1)
    answer = await invoke(gql, service["id"], {"inputs": [[2.0, 2.0], [-2.0, -2.0]]})
    assert answer["userErrors"] == [] and answer["output"]["outputs"]["label"] == [1, 0], answer
    response = await gql.http.post(service["endpoint"], json={"inputs": [[1.0, 3.0]]})
    assert response.status_code == 200 and response.json()["outputs"]["label"] == [1]
    assert "127.0.0.1" not in json.dumps(await gql.execute(USAGE, {"id": service["id"]}))

    async def accrued() -> bool:
        # Slurm times a job in whole seconds: let the replica run long enough to cost something
        jobs = (await gql.execute(ACCRUED, {"id": service["id"]}))["node"]["replicaJobs"]
        return any(job["costSoFar"] and float(job["costSoFar"]["amount"]) > 0 for job in jobs)

    await eventually(accrued, "the running replica to accrue a cost", timeout=60)
    await gql.execute(STOP, {"id": service["id"]})
    events = await collect_service_events(gql, service["id"])
    assert [event["state"] for event in events if event["kind"] == "STATE"] == ["DEPLOYING", "READY", "STOPPING", "STOPPED"]

    async def metered() -> list[dict[str, Any]]:
        return list((await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["edges"])

    [record] = await eventually(metered, "the Slurm replica metered once", timeout=60)
    # a replica of a few seconds costs less than a millionth: its metered time is what must be there
    assert record["node"]["job"]["center"]["name"] == "hpc" and record["node"]["seconds"] >= 1, record
    assert float(record["node"]["standardUnitHours"]) > 0, record
