"""Inference services end to end on a LOCAL center, through HTTP and WebSocket: train a
scikit-learn model, export it to ONNX, register it, serve it with the built-in runner,
invoke it through GraphQL and POST /services/{id}/invoke, stop it, read its usage; a custom
serving command; every fault with its code."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicn.settings import ServicesConfig
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.processes import folder_jobs_can_read, group_alive, python_with_packages
from tests.service_helpers import (
    SERVER_SCRIPT,
    STOP,
    TRAIN_SCRIPT,
    collect_service_events,
    deploy,
    deploy_errors,
    invoke,
    register_model,
    wait_for_service,
)
from tests.test_auth import new_account
from tests.waiting import eventually

FAST = ServicesConfig(
    tick_seconds=0.1, health_interval_seconds=0.5, cool_down_seconds=1.0, scale_up_after_seconds=0.3, max_payload_bytes=10_000
)
USAGE = """query($id: ID!) { node(id: $id) { ... on InferenceService { requestsTotal
  usage { edges { node { amount { amount } standardUnitHours job { name kind state } } } }
  replicaJobs { id } model { services { edges { node { id } } } } } } }"""
REPLICAS = "query($id: ID!) { node(id: $id) { ... on InferenceService { replicaJobs { id state } } } }"


def fast() -> ServicesConfig:
    """FAST, with an interpreter the isolated jobs' users can run for the built-in runner's replicas."""
    return FAST.model_copy(update={"python": Path(python_with_packages())})


@pytest.fixture
async def served(gateway_factory: Any) -> Gateway:
    gateway: Gateway = await gateway_factory([local_center(cores=8, price="36.00")], services=fast())
    return gateway


@pytest.fixture
def scripts() -> Any:
    """Where a test puts its serving scripts: a folder the jobs' users may read (pytest's tmp_path is private)."""
    with folder_jobs_can_read() as folder:
        yield folder


TRAINED = "query($id: ID!) { node(id: $id) { ... on Job { outputModel { id uri trainedBy { id } } } } }"


async def trained_model(gateway: Gateway) -> str:
    """A training job writes model.onnx to its AICN_OUTPUT_DIR; `outputModelName` registers that folder."""
    training = python_job(TRAIN_SCRIPT, name="train", minutes=2, kind="TRAINING", outputModelName="classifier")
    training["command"][0] = python_with_packages()  # scikit-learn and skl2onnx are the gateway's test extras
    job = await submit(gateway.client, training)
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"}, timeout=60)
    model = (await gateway.client.execute(TRAINED, {"id": job["id"]}))["node"]["outputModel"]
    assert model["trainedBy"]["id"] == job["id"] and model["uri"].startswith("file://"), model
    return str(model["id"])


def server_command(scripts: Path, mode: str, *extra: str) -> list[str]:
    script = scripts / "server.py"
    script.write_text(SERVER_SCRIPT)
    return [python_with_packages(), str(script), mode, "{port}", *extra]


async def replica_groups(gateway: Gateway, service_id: str) -> list[int]:
    """The process group of each replica's command (the LOCAL supervisor records it)."""
    data = await gateway.client.execute(REPLICAS, {"id": service_id})
    root = gateway.runtime.settings.data_dir / "centers" / "local" / "jobs"
    groups: list[int] = []
    for job in data["node"]["replicaJobs"]:
        row = (await gateway.runtime.services.job_reads.by_ids([_key(job["id"])], None))[_key(job["id"])]
        child = root / str(row.external_id) / "child.json"
        await eventually(child.exists, "the replica's command started")
        groups.append(int(json.loads(child.read_text())["pid"]))
    return groups


def _key(global_id: str) -> int:
    from resolvers.common.ids import from_global_id

    decoded = from_global_id(global_id)
    assert decoded is not None
    return int(decoded[1])


async def test_train_register_deploy_invoke_stop_and_bill(served: Gateway, tmp_path: Path) -> None:
    gql = served.client
    model_id = await trained_model(served)
    service = await deploy(gql, modelId=model_id, name="iris")
    assert service["state"] == "DEPLOYING" and service["center"]["name"] == "local"
    assert service["endpoint"] == f"/services/{service['id']}/invoke" and "127.0.0.1" not in json.dumps(service)
    ready = await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    assert ready["replicas"] == {"min": 1, "max": 1, "ready": 1, "desired": 1}
    answer = await invoke(gql, service["id"], {"inputs": [[2.0, 2.0], [-2.0, -2.0]]})
    assert answer["userErrors"] == [] and answer["output"]["outputs"]["label"] == [1, 0], answer
    assert answer["latencyMs"] > 0
    response = await gql.http.post(service["endpoint"], json={"inputs": [[3.0, 1.0]]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"]["label"] == [1]
    groups = await replica_groups(served, service["id"])
    assert groups and all(group_alive(group) for group in groups)

    stopped = (await gql.execute(STOP, {"id": service["id"]}))["stopService"]
    assert stopped["userErrors"] == [] and stopped["service"]["state"] == "STOPPING"
    events = await collect_service_events(gql, service["id"])
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    states = [event["state"] for event in events if event["kind"] == "STATE"]
    assert states == ["DEPLOYING", "READY", "STOPPING", "STOPPED"], events
    assert not any(group_alive(group) for group in groups)
    replay = await collect_service_events(gql, service["id"], after=2)
    assert replay == events[2:]

    async def metered() -> dict[str, Any] | None:
        node = (await gql.execute(USAGE, {"id": service["id"]}))["node"]
        return node if node["usage"]["edges"] and node["requestsTotal"] == "2" else None

    node = await eventually(metered, "the replica's usage and the request count", timeout=10)
    [record] = [edge["node"] for edge in node["usage"]["edges"]]
    assert record["job"]["name"] == "iris replica 1" and record["job"]["kind"] == "INFERENCE"
    assert float(record["amount"]["amount"]) > 0
    assert len(node["replicaJobs"]) == 0
    assert node["model"]["services"]["edges"] == [{"node": {"id": service["id"]}}]
    listed = await gql.execute("{ services(filter: {states: [STOPPED]}) { totalCount edges { node { id } } } }")
    assert listed["services"]["totalCount"] == 1


async def test_a_custom_serving_command_and_its_faults(served: Gateway, tmp_path: Path, scripts: Path) -> None:
    gql = served.client
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    model_id = await register_model(gql, name="custom", uri=model_dir.as_uri())
    ok = await deploy(gql, modelId=model_id, name="echo", command=server_command(scripts, "ok"))
    failing = await deploy(gql, modelId=model_id, name="fails", command=server_command(scripts, "error"))
    hanging = await deploy(gql, modelId=model_id, name="hangs", command=server_command(scripts, "hang"), deadlineSeconds=1)
    broken = await deploy(gql, modelId=model_id, name="broken", command=server_command(scripts, "exit"))
    for service in (ok, failing, hanging):
        await wait_for_service(gql, service["id"], {"READY"}, ready=1)

    echoed = await invoke(gql, ok["id"], {"x": 1})
    assert echoed["output"]["echo"] == {"x": 1} and echoed["userErrors"] == []

    backend = await invoke(gql, failing["id"], {"x": 1})
    assert [error["code"] for error in backend["userErrors"]] == ["BACKEND_ERROR"] and backend["output"] is None
    assert "500" in backend["userErrors"][0]["message"] and "Traceback" not in json.dumps(backend)
    response = await gql.http.post(failing["endpoint"], json={"x": 1})
    assert response.status_code == 502 and response.json()["errors"][0]["extensions"]["code"] == "BACKEND_ERROR"
    assert "Traceback" not in response.text

    started = asyncio.get_running_loop().time()
    timed_out = await invoke(gql, hanging["id"], {"x": 1})
    assert [error["code"] for error in timed_out["userErrors"]] == ["SERVICE_TIMEOUT"]
    assert asyncio.get_running_loop().time() - started < 5

    failed = await wait_for_service(gql, broken["id"], {"FAILED"})
    assert failed["failureReason"].startswith("REPLICA_FAILED") and "cannot load the model: it is broken" in failed["failureReason"]

    too_large = await invoke(gql, ok["id"], {"blob": "x" * 20_000})
    assert [error["code"] for error in too_large["userErrors"]] == ["PAYLOAD_TOO_LARGE"]
    response = await gql.http.post(ok["endpoint"], content=json.dumps({"blob": "x" * 20_000}), headers={"content-type": "application/json"})
    assert response.status_code == 413

    # tenants: another account's service answers exactly like one that does not exist
    _, _, stranger = await new_account(served, "stranger")
    foreign = await invoke(stranger, ok["id"], {"x": 1})
    missing = await invoke(stranger, "SW5mZXJlbmNlU2VydmljZTo5OTk5", {"x": 1})
    assert foreign == {**missing, "latencyMs": foreign["latencyMs"]}
    assert [error["code"] for error in foreign["userErrors"]] == ["SERVICE_NOT_FOUND"]
    theirs = await stranger.http.post(ok["endpoint"], json={"x": 1})
    nobody = await stranger.http.post("/services/SW5mZXJlbmNlU2VydmljZTo5OTk5/invoke", json={"x": 1})
    assert theirs.status_code == nobody.status_code == 404 and theirs.json() == nobody.json()
    assert (await stranger.execute(STOP, {"id": ok["id"]}))["stopService"]["userErrors"][0]["code"] == "SERVICE_NOT_FOUND"
    async with httpx.AsyncClient(base_url=served.url, headers={"authorization": "Bearer aicn_not-a-token"}) as forged:
        refused = await forged.post(ok["endpoint"], json={"x": 1})
    assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    for service in (ok, failing, hanging):
        await gql.execute(STOP, {"id": service["id"]})
    for service in (ok, failing, hanging):
        await wait_for_service(gql, service["id"], {"STOPPED"})
    not_ready = await invoke(gql, ok["id"], {"x": 1})
    assert [error["code"] for error in not_ready["userErrors"]] == ["SERVICE_NOT_READY"]
    response = await gql.http.post(ok["endpoint"], json={"x": 1})
    assert response.status_code == 503


async def test_deploy_refuses_bad_input_with_codes(served: Gateway, tmp_path: Path, scripts: Path) -> None:
    gql = served.client
    model_dir = tmp_path / "plain"
    model_dir.mkdir()
    plain = await register_model(gql, name="plain", uri=model_dir.as_uri())
    placeholder = await register_model(gql, name="elsewhere", uri="s3://bucket/model")
    assert await deploy_errors(gql, modelId="TW9kZWw6OTk5OQ") == ["MODEL_NOT_FOUND"]
    assert await deploy_errors(gql, modelId=plain) == ["MODEL_NOT_SERVABLE"]
    assert await deploy_errors(gql, modelId=placeholder) == ["MODEL_ARTIFACT_MISSING"]
    command = server_command(scripts, "ok")
    assert await deploy_errors(gql, modelId=plain, command=command, scale={"min": 3, "max": 2}) == ["INVALID_SCALE"]
    assert await deploy_errors(gql, modelId=plain, command=command, scale={"min": -1, "max": 2}) == ["INVALID_SCALE"]
    assert await deploy_errors(gql, modelId=plain, command=command, scale={"min": 1, "max": 2, "targetRequestsPerReplica": 0}) == [
        "INVALID_SCALE"
    ]
    listed = await gql.execute("{ services { totalCount } }")
    assert listed["services"]["totalCount"] == 0


async def test_scale_up_under_load_down_to_zero_and_a_cold_start(served: Gateway, tmp_path: Path, scripts: Path) -> None:
    gql = served.client
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    model_id = await register_model(gql, name="slow", uri=model_dir.as_uri())
    service = await deploy(
        gql,
        modelId=model_id,
        name="slow",
        command=server_command(scripts, "slow"),
        scale={"min": 0, "max": 2, "targetRequestsPerReplica": 1},
    )
    await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    loaded = asyncio.Event()

    async def client() -> None:
        while not loaded.is_set():
            answer = await invoke(gql, service["id"], {"x": 1})
            assert answer["userErrors"] == [], answer

    clients = [asyncio.create_task(client()) for _ in range(4)]
    try:
        scaled = await wait_for_service(gql, service["id"], {"READY"}, timeout=30, ready=2, desired=2)
    finally:
        loaded.set()
        await asyncio.gather(*clients)
    assert scaled["replicas"]["max"] == 2
    await wait_for_service(gql, service["id"], {"READY"}, timeout=30, ready=0, desired=0)
    cold = await invoke(gql, service["id"], {"cold": True})
    assert cold["userErrors"] == [] and cold["output"]["echo"] == {"cold": True}, cold
    await gql.execute(STOP, {"id": service["id"]})
    events = await collect_service_events(gql, service["id"])
    steps = [event["message"] for event in events if event["kind"] == "SCALE"]
    assert any(step.startswith("scaled 1 → 2") for step in steps), steps
    assert any(step.startswith("scaled 1 → 0") for step in steps), steps
    assert any(step.startswith("scaled 0 → 1: a request waits") for step in steps), steps
    assert events[-1]["state"] == "STOPPED"


async def kill_replica_serving(gateway: Gateway, service_id: str) -> None:
    """SIGKILL the command of the replica that has a request in flight."""
    pool = gateway.runtime.service_controller.pool(_key(service_id))
    replica = await eventually(lambda: next((r for r in pool.ready.values() if r.in_flight), None), "a request in flight on a replica")
    row = (await gateway.runtime.services.job_reads.by_ids([replica.job_id], None))[replica.job_id]
    child = gateway.runtime.settings.data_dir / "centers" / "local" / "jobs" / str(row.external_id) / "child.json"
    os.killpg(int(json.loads(child.read_text())["pid"]), signal.SIGKILL)


async def test_a_replica_that_dies_is_replaced_and_its_request_answered_or_retried(served: Gateway, tmp_path: Path, scripts: Path) -> None:
    gql = served.client
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    model_id = await register_model(gql, name="dies", uri=model_dir.as_uri())
    plain = await deploy(gql, modelId=model_id, name="plain", command=server_command(scripts, "slow", "3"))
    retried = await deploy(
        gql, modelId=model_id, name="retried", command=server_command(scripts, "slow", "3"), idempotent=True, scale={"min": 2, "max": 2}
    )
    await wait_for_service(gql, plain["id"], {"READY"}, ready=1)
    await wait_for_service(gql, retried["id"], {"READY"}, ready=2)

    pending = asyncio.create_task(invoke(gql, plain["id"], {"n": 1}))
    await kill_replica_serving(served, plain["id"])
    lost = await pending
    assert [error["code"] for error in lost["userErrors"]] == ["REPLICA_FAILED"], lost

    pending = asyncio.create_task(invoke(gql, retried["id"], {"n": 2}))
    await kill_replica_serving(served, retried["id"])
    answer = await pending
    assert answer["userErrors"] == [] and answer["output"]["echo"] == {"n": 2}, answer

    replaced = await wait_for_service(gql, plain["id"], {"READY"}, timeout=30, ready=1)
    assert replaced["replicas"]["desired"] == 1
    again = await invoke(gql, plain["id"], {"n": 3})
    assert again["userErrors"] == [] and again["output"]["replica"] == "2"
    for service in (plain, retried):
        await gql.execute(STOP, {"id": service["id"]})
    events = await collect_service_events(gql, plain["id"])
    messages = [event["message"] or "" for event in events]
    assert any(message.startswith("replica 1 ended") for message in messages), messages
    assert "DEGRADED" in [event["state"] for event in events], events
    await wait_for_service(gql, retried["id"], {"STOPPED"})


async def test_a_center_that_cannot_read_the_artifact_gets_a_verified_copy_first(gateway_factory: Any, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=4, reads_gateway_files=False)], services=fast())
    gql = gateway.client
    trained = await gql.execute("query($id: ID!) { node(id: $id) { ... on Model { uri } } }", {"id": await trained_model(gateway)})
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(Path(trained["node"]["uri"].removeprefix("file://")), elsewhere)  # outside the center's data root
    model_id = await register_model(gql, name="outside", uri=elsewhere.as_uri())
    service = await deploy(gql, modelId=model_id, name="copied")
    await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    answer = await invoke(gql, service["id"], {"inputs": [[2.0, 2.0]]})
    assert answer["output"]["outputs"]["label"] == [1], answer
    await gql.execute(STOP, {"id": service["id"]})
    events = await collect_service_events(gql, service["id"])
    [copied] = [event["message"] for event in events if event["kind"] == "ARTIFACT"]
    assert copied.startswith("copied the model to local:") and "sha256:" in copied and copied.endswith("verified"), copied
    center = gateway.runtime.registry.all()[0]
    assert center.data_root is not None
    assert list((center.data_root / "models" / f"service-{_key(service['id'])}").rglob("model.onnx"))
