"""Inference services on a PEER center, end to end on two real gateways: the origin A (SQLite)
trains a scikit-learn model exported to ONNX, deploys it on its PEER center B (PostgreSQL); the
model's files go to B (checksum verified there), B serves it, and A follows, invokes (GraphQL
and HTTP), scales and stops it through B's own graph and invoke route; the replica time is
metered once at A, at B's price plus the markup, and peerSettlement agrees with B's records."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.client import GraphQLClient
from tests.conftest import POSTGRES_URL, drop_schema, require_service
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.peer_network import CREATE_ACCOUNT, CREATE_TOKEN, NetworkGateway, start_gateway
from tests.service_helpers import SCALE, STOP, TRAIN_SCRIPT, deploy, invoke, wait_for_service
from tests.waiting import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

#: replicas run the gateway's own interpreter (onnxruntime, scikit-learn): jobs run as the gateway's user
AS_GATEWAY = '\n[centers.local]\nrun_as = "none"\n'
FAST = "\n[services]\ntick_seconds = 0.1\nhealth_interval_seconds = 0.5\ncool_down_seconds = 1.0\nscale_up_after_seconds = 0.3\n"

TRAINED = "query($id: ID!) { node(id: $id) { ... on Job { outputModel { id } } } }"
CENTERS = "{ centers { edges { node { id name kind } } } }"
USAGE = """query($id: ID!) { node(id: $id) { ... on InferenceService { state
  usage { edges { node { amount { amount } unitPrice { amount } seconds job { id kind state remoteId } } } } } } }"""
PEER_SERVICES = "{ services(first: 10) { edges { node { id state replicas { ready desired } owner { name } model { name } } } } }"
SETTLEMENT = """
query($center: ID!, $period: String!) {
  peerSettlement(centerId: $center, period: $period) {
    jobsDelegated agrees originCharged { amount } expectedPeerCharge { amount } peerCharged { amount }
    disagreements { job { id } reason }
  }
}
"""
INPUTS = {"inputs": [[2.0, 2.0], [-2.0, -2.0]]}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, NetworkGateway]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    directory = tmp_path_factory.mktemp("peer-services")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    b = await start_gateway(directory, "b", POSTGRES_URL, schema, price="10.00", local_extra=AS_GATEWAY, extra_centers=FAST)
    a: NetworkGateway | None = None
    try:
        a = await start_gateway(
            directory,
            "a",
            f"sqlite+aiosqlite:///{directory / 'a.db'}",
            None,
            price="100.00",
            peers=[b],
            markup="1.5",
            local_extra=AS_GATEWAY,
            extra_centers=FAST,
        )
        yield {"a": a, "b": b}
    finally:
        if a is not None:
            await a.served.stop()
        await b.served.stop()
        await drop_schema(POSTGRES_URL, schema)


async def center_ids(gql: GraphQLClient) -> dict[str, str]:
    edges = (await gql.execute(CENTERS))["centers"]["edges"]
    return {edge["node"]["kind"]: edge["node"]["id"] for edge in edges}


async def trained_model(a: NetworkGateway) -> str:
    """A training job on A's LOCAL center writes model.onnx; `outputModelName` registers it at A only."""
    local = (await center_ids(a.served.client))["LOCAL"]
    training = python_job(TRAIN_SCRIPT, name="train", minutes=2, kind="TRAINING", outputModelName="classifier", centerId=local)
    training["command"][0] = sys.executable
    job = await submit(a.served.client, training)
    await wait_for_state(a.served.client, job["id"], {"SUCCEEDED"}, timeout=90)
    return str((await a.served.client.execute(TRAINED, {"id": job["id"]}))["node"]["outputModel"]["id"])


async def peer_service(b: NetworkGateway) -> dict[str, Any]:
    [edge] = (await b.served.client.execute(PEER_SERVICES))["services"]["edges"]
    return dict(edge["node"])


async def test_a_service_on_the_peer_is_deployed_invoked_scaled_stopped_and_metered_once(network: dict[str, NetworkGateway]) -> None:
    a, b = network["a"], network["b"]
    gql = a.served.client
    model_id = await trained_model(a)
    peer = (await center_ids(gql))["PEER"]
    fields = {"modelId": model_id, "name": "classifier", "centerId": peer, "scale": {"min": 1, "max": 2}, "idempotencyKey": "svc-1"}
    service = await deploy(gql, **fields)
    assert service["center"]["name"] == "peer-b" and service["state"] == "DEPLOYING"
    assert (await deploy(gql, **fields))["id"] == service["id"]  # a retried deploy is the same service
    ready = await wait_for_service(gql, service["id"], {"READY"}, timeout=90)
    assert ready["replicas"]["ready"] == 1 and ready["endpoint"].startswith("/services/")

    # the peer serves it for the origin's account, under an opaque name, from the files it was sent
    at_peer = await peer_service(b)
    assert at_peer["state"] == "READY" and at_peer["owner"]["name"] == "peer-a"
    assert at_peer["model"]["name"].startswith("aicn-model-") and "classifier" not in str(at_peer)

    answer = await invoke(gql, service["id"], INPUTS)
    assert answer["userErrors"] == [] and answer["output"]["outputs"]["label"] == [1, 0], answer
    async with httpx.AsyncClient(base_url=a.served.url) as http:
        response = await http.post(f"/services/{service['id']}/invoke", json=INPUTS, headers={"authorization": f"Bearer {a.served.token}"})
    assert response.status_code == 200 and response.json()["outputs"]["label"] == [1, 0]
    assert b.served.url not in response.text and str(b.served.port) not in str(response.headers)

    # scaling goes through the peer: both sides want two replicas, and two answer at the peer
    scaled = (await gql.execute(SCALE, {"id": service["id"], "min": 2, "max": 2}))["scaleService"]
    assert scaled["userErrors"] == [], scaled
    await wait_for_service(gql, service["id"], {"READY"}, timeout=90, ready=2, desired=2)
    assert (await peer_service(b))["replicas"] == {"ready": 2, "desired": 2}

    stopped = (await gql.execute(STOP, {"id": service["id"]}))["stopService"]
    assert stopped["userErrors"] == [], stopped
    await wait_for_service(gql, service["id"], {"STOPPED"}, timeout=60)
    assert (await peer_service(b))["state"] == "STOPPED"
    refused = await invoke(gql, service["id"], INPUTS)
    assert refused["userErrors"][0]["code"] == "SERVICE_NOT_READY"

    # each replica the peer ran is metered once here, at the peer's price plus the markup
    async def metered() -> list[dict[str, Any]] | None:
        edges = (await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["edges"]
        return [edge["node"] for edge in edges] if len(edges) == 2 else None

    usage = await eventually(metered, "both replicas metered at the origin", timeout=30)
    assert all(Decimal(record["unitPrice"]["amount"]) == Decimal("11.5") for record in usage), usage
    assert all(record["job"]["kind"] == "INFERENCE" and record["job"]["remoteId"] for record in usage)
    assert len({record["job"]["id"] for record in usage}) == 2
    period = datetime.now(UTC).strftime("%Y-%m")
    settled = (await gql.execute(SETTLEMENT, {"center": peer, "period": period}))["peerSettlement"]
    assert settled["agrees"] and settled["disagreements"] == [], settled
    assert settled["jobsDelegated"] == 2
    assert Decimal(settled["peerCharged"]["amount"]) == Decimal(settled["expectedPeerCharge"]["amount"]) > 0
    assert Decimal(settled["originCharged"]["amount"]) == sum(Decimal(record["amount"]["amount"]) for record in usage)


async def test_another_accounts_peer_service_is_not_found(network: dict[str, NetworkGateway]) -> None:
    a = network["a"]
    gql = a.served.client
    model_id = await trained_model(a)
    peer = (await center_ids(gql))["PEER"]
    service = await deploy(gql, modelId=model_id, name="private", centerId=peer)
    made = (await gql.execute(CREATE_ACCOUNT, {"input": {"name": "stranger"}}))["createAccount"]
    issued = (await gql.execute(CREATE_TOKEN, {"input": {"accountId": made["account"]["id"], "name": "t", "scopes": ["READ", "SUBMIT"]}}))[
        "createApiToken"
    ]
    stranger = GraphQLClient(a.served.url, issued["secret"])
    try:
        assert (await stranger.execute("query($id: ID!) { node(id: $id) { id } }", {"id": service["id"]}))["node"] is None
        assert (await invoke(stranger, service["id"], INPUTS))["userErrors"][0]["code"] == "SERVICE_NOT_FOUND"
        async with httpx.AsyncClient(base_url=a.served.url) as http:
            response = await http.post(
                f"/services/{service['id']}/invoke", json=INPUTS, headers={"authorization": f"Bearer {issued['secret']}"}
            )
        assert response.status_code == 404 and response.json()["errors"][0]["extensions"]["code"] == "SERVICE_NOT_FOUND"
    finally:
        await stranger.close()
    assert (await gql.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
    await wait_for_service(gql, service["id"], {"STOPPED"}, timeout=60)
