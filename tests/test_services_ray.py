"""Inference services on the real RAY center: a scikit-learn model exported to ONNX, served by the
built-in runner as a Ray Serve application (deployed through Serve's REST API, behind Serve's
loopback proxy on a port of its own), invoked through GraphQL and HTTP, scaled to two Serve replicas
and back, stopped (the application deleted), and metered once per replica."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicn.settings import RayConfig, ServicesConfig
from tests.conftest import Gateway
from tests.ray_helpers import RAY_URL, RESOURCE_MODELS, ray_center
from tests.service_helpers import (
    SCALE,
    STOP,
    TRAIN_SCRIPT,
    collect_service_events,
    deploy,
    deploy_errors,
    invoke,
    register_model,
    wait_for_service,
)
from tests.waiting import eventually

pytestmark = [pytest.mark.ray, pytest.mark.parametrize("database", ["postgres"], indirect=True)]

FAST = ServicesConfig(tick_seconds=0.2, health_interval_seconds=1.0, cool_down_seconds=0.5)
#: the shared head has 2 CPUs: a replica reserves a tenth of one
SMALL = RayConfig(url=RAY_URL, resource_models=RESOURCE_MODELS, serve_replica_cpus=0.1)
USAGE = """query($id: ID!) { node(id: $id) { ... on InferenceService { failureReason
  usage { edges { node { seconds standardUnitHours amount { amount } job { name state center { name } } } } } } } }"""
ACCRUED = "query($id: ID!) { node(id: $id) { ... on InferenceService { replicaJobs { state costSoFar { amount } } } } }"


def train(folder: Path) -> Path:
    """A logistic regression on two features, exported to ONNX (the gateway's test extras)."""
    subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(folder)], check=True, capture_output=True, timeout=120)
    return folder


async def serve_applications() -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        return dict((await client.get(f"{RAY_URL}/api/serve/applications/")).json().get("applications") or {})


async def running_replicas(app: str) -> int:
    details = (await serve_applications()).get(app) or {}
    replicas = ((details.get("deployments") or {}).get("onnx") or {}).get("replicas") or []
    return sum(1 for replica in replicas if replica.get("state") == "RUNNING")


async def gone(app: str) -> bool:
    return app not in await serve_applications()


async def app_under(folder: Path) -> str | None:
    """The Serve application whose model lies under ``folder`` (the test's own)."""
    for name, details in (await serve_applications()).items():
        if str(((details.get("deployed_app_config") or {}).get("args") or {}).get("model_dir", "")).startswith(str(folder)):
            return name
    return None


@pytest.fixture(autouse=True)
async def no_leftovers(tmp_path: Path) -> AsyncIterator[None]:
    """A failing test leaves no Serve application of its own on the shared head."""
    yield
    applications = await serve_applications()
    ours = await app_under(tmp_path)
    if ours is not None:
        kept = [details["deployed_app_config"] for name, details in applications.items() if name != ours]
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8270}, "applications": kept}
            (await client.put(f"{RAY_URL}/api/serve/applications/", json=body)).raise_for_status()


async def test_deploy_invoke_scale_and_stop_on_ray(gateway_factory: Any, tmp_path: Path) -> None:
    # the center cannot read the gateway's files: the model is copied into its data root first
    center = ray_center(ray=SMALL, reads_gateway_files=False, data_root=tmp_path / "ray-data")
    gateway: Gateway = await gateway_factory([center], services=FAST)
    gql = gateway.client
    model_id = await register_model(gql, name="points", uri=train(tmp_path / "model").as_uri(), framework="onnx")

    service = await deploy(gql, modelId=model_id, name="on-ray", request={"maxDurationMinutes": 10, "devices": 1})
    assert service["center"]["name"] == "ray"
    await wait_for_service(gql, service["id"], {"READY"}, timeout=120, ready=1)
    app = await app_under(tmp_path)
    assert app is not None
    config = (await serve_applications())[app]["deployed_app_config"]
    assert config["args"]["model_dir"].startswith(str(tmp_path / "ray-data")), config  # the verified copy is what Serve reads
    answer = await invoke(gql, service["id"], {"inputs": [[2.0, 2.0], [-2.0, -2.0]]})
    assert answer["userErrors"] == [] and answer["output"]["outputs"]["label"] == [1, 0], answer
    response = await gql.http.post(service["endpoint"], json={"inputs": [[1.0, 3.0]]})
    assert response.status_code == 200 and response.json()["outputs"]["label"] == [1]
    bad = await gql.http.post(service["endpoint"], json={"nothing": []})
    assert bad.status_code == 422 and "INVALID_INPUT" in bad.text, (bad.status_code, bad.text)
    assert "8270" not in json.dumps(await gql.execute(USAGE, {"id": service["id"]}))

    scaled = (await gql.execute(SCALE, {"id": service["id"], "min": 2, "max": 2}))["scaleService"]
    assert scaled["userErrors"] == [], scaled
    await wait_for_service(gql, service["id"], {"READY"}, timeout=120, ready=2, desired=2)
    assert await running_replicas(app) == 2
    assert len((await serve_applications())[app]["deployed_app_config"]["deployments"][0]["user_config"]["aicn_replicas"]) == 2
    answer = await invoke(gql, service["id"], {"inputs": [[-1.0, -3.0]]})
    assert answer["output"]["outputs"]["label"] == [0], answer

    scaled = (await gql.execute(SCALE, {"id": service["id"], "min": 1, "max": 1}))["scaleService"]
    assert scaled["userErrors"] == [], scaled
    await wait_for_service(gql, service["id"], {"READY"}, timeout=120, ready=1, desired=1)

    async def one_left() -> bool:
        return await running_replicas(app) == 1

    await eventually(one_left, "Serve to run one replica again", timeout=60, interval=0.5)

    async def accrued() -> bool:
        jobs = (await gql.execute(ACCRUED, {"id": service["id"]}))["node"]["replicaJobs"]
        return any(job["state"] == "RUNNING" and job["costSoFar"] and float(job["costSoFar"]["amount"]) > 0 for job in jobs)

    await eventually(accrued, "the running replica to accrue a cost", timeout=60)
    await gql.execute(STOP, {"id": service["id"]})
    events = await collect_service_events(gql, service["id"])
    states = [event["state"] for event in events if event["kind"] == "STATE"]
    assert states[0] == "DEPLOYING" and states[-2:] == ["STOPPING", "STOPPED"], states
    await eventually(lambda: gone(app), "the Serve application deleted", timeout=60, interval=0.5)

    async def metered() -> list[dict[str, Any]] | None:
        edges = list((await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["edges"])
        return edges if len(edges) >= 2 else None

    records = await eventually(metered, "both replicas metered", timeout=60)
    assert len(records) == 2, records  # once per replica, never twice
    names = sorted(record["node"]["job"]["name"] for record in records)
    assert names == ["on-ray replica 1", "on-ray replica 2"], names
    for record in records:
        node = record["node"]
        assert node["job"]["center"]["name"] == "ray" and node["job"]["state"] == "CANCELLED", node
        assert node["seconds"] > 0 and float(node["standardUnitHours"]) > 0, node
        # cpu-core at the center's price, 0.45 per standard-unit-hour
        assert abs(float(node["amount"]["amount"]) - float(node["standardUnitHours"]) * 0.45) < 1e-5, node


async def test_a_model_serve_cannot_load_fails_the_service_with_its_reason(gateway_factory: Any, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory([ray_center(ray=SMALL)], services=FAST)
    gql = gateway.client
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a protobuf at all")
    model_id = await register_model(gql, name="broken", uri=broken.as_uri(), framework="onnx")
    # Ray Serve runs the built-in runner only: a serving command is refused, by name or by placement
    ray_id = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "ray")
    command = ["python", "my_server.py", "{port}"]
    assert await deploy_errors(gql, modelId=model_id, centerId=ray_id, command=command) == ["CENTER_CANNOT_SERVE"]
    assert await deploy_errors(gql, modelId=model_id, command=command) == ["NO_FEASIBLE_CENTER"]
    service = await deploy(gql, modelId=model_id, name="broken-on-ray")
    app = await eventually(lambda: app_under(tmp_path), "the Serve application made", timeout=60, interval=0.2)
    failed = await wait_for_service(gql, service["id"], {"FAILED"}, timeout=120)
    reason = failed["failureReason"]
    assert reason.startswith("REPLICA_FAILED: ") and "SERVE_DEPLOY_FAILED" in reason and "INVALID_PROTOBUF" in reason, reason
    assert "Traceback" not in reason
    await eventually(lambda: gone(app), "the failed Serve application removed", timeout=60, interval=0.5)
