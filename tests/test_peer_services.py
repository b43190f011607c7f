"""Inference services on a PEER center, end to end on two real gateways: the origin A (SQLite)
trains a scikit-learn random forest exported to ONNX (over 1 MiB, in a folder with its labels
file), deploys it on its PEER center B (PostgreSQL, default body limit of 1 MiB); the folder
streams to B's upload route (checksum verified there, sent once), B serves it, and A follows,
invokes (GraphQL and HTTP), scales and stops it through B's own graph and invoke route; the
replica time is metered once at A, at B's price plus the markup, and peerSettlement agrees
with B's records.

A's PEER center polls once an hour: everything A learns of B's services in these tests comes
over the live link (B's serviceEvents), across a restart of B; a replica B ran while A was
down (so A never saw it running) is metered once at A from B's usage records."""

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

from resolvers.common.ids import from_global_id
from store import services as service_store
from store.db import Database
from tests.client import GraphQLClient
from tests.conftest import POSTGRES_URL, drop_schema, require_service
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.peer_network import CREATE_ACCOUNT, CREATE_TOKEN, NetworkGateway, start_gateway
from tests.service_helpers import SCALE, STOP, deploy, invoke, wait_for_service
from tests.waiting import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

#: replicas run the gateway's own interpreter (onnxruntime, scikit-learn): jobs run as the gateway's user
AS_GATEWAY = '\n[centers.local]\nrun_as = "none"\n'
FAST = "\n[services]\ntick_seconds = 0.1\nhealth_interval_seconds = 0.5\ncool_down_seconds = 1.0\nscale_up_after_seconds = 0.3\n"

#: a random forest on a noisy 2-feature problem: an ONNX file of about 2 MiB, and the labels beside it
FOREST_SCRIPT = """
import os, sys
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from skl2onnx import to_onnx
out = os.environ["AICN_OUTPUT_DIR"]
rng = np.random.default_rng(0)
x = rng.normal(size=(3000, 2)).astype(np.float32)
y = ((x[:, 0] + x[:, 1] > 0) ^ (rng.random(3000) < 0.15)).astype(np.int64)
model = RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=1).fit(x, y)
onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model.onnx"), "wb").write(onx.SerializeToString())
open(os.path.join(out, "labels.txt"), "w").write("negative\\npositive\\n")
print("trained", model.score(x, y))
"""
TRAINED = "query($id: ID!) { node(id: $id) { ... on Job { outputModel { id sizeBytes checksum } } } }"
MODELS = "{ models(first: 20) { edges { node { name sizeBytes checksum } } } }"
AT_PEER = """query($id: ID!) { node(id: $id) { ... on InferenceService { state replicas { ready desired }
  replicaJobs { id } usage { totalCount edges { node { job { id } } } } } } }"""
PEER_SCALE = """mutation($id: ID!, $min: Int!, $max: Int!) {
  scaleService(input: {serviceId: $id, scale: {min: $min, max: $max}}) { userErrors { code message } } }"""
BIG = 1024 * 1024  # the peer's default [limits] max_body_bytes
CENTERS = "{ centers { edges { node { id name kind } } } }"
USAGE = """query($id: ID!) { node(id: $id) { ... on InferenceService { state
  usage { edges { node { amount { amount } unitPrice { amount } seconds job { id kind state remoteId } } } } } } }"""
PEER_SERVICES = "{ services(first: 10) { edges { node { id name state replicas { ready desired } owner { name } model { name } } } } }"
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
            peer_poll_seconds=3600,  # B's services reach A over the live link, or not in time
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


_trained: dict[str, dict[str, Any]] = {}


async def trained_model(a: NetworkGateway) -> dict[str, Any]:
    """A training job on A's LOCAL center writes the forest's folder; `outputModelName` registers it at A only (once a module)."""
    if "forest" in _trained:
        return _trained["forest"]
    local = (await center_ids(a.served.client))["LOCAL"]
    training = python_job(FOREST_SCRIPT, name="train", minutes=3, kind="TRAINING", outputModelName="classifier", centerId=local)
    training["command"][0] = sys.executable
    job = await submit(a.served.client, training)
    await wait_for_state(a.served.client, job["id"], {"SUCCEEDED"}, timeout=120)
    _trained["forest"] = dict((await a.served.client.execute(TRAINED, {"id": job["id"]}))["node"]["outputModel"])
    return _trained["forest"]


def peer_client(a: NetworkGateway) -> GraphQLClient:
    """A's own account at B (its token): what B's graph shows A."""
    return GraphQLClient(a.peers[0].url.removesuffix("/graphql"), a.peers[0].token)


async def models_at_peer(a: NetworkGateway) -> list[dict[str, Any]]:
    client = peer_client(a)
    try:
        return [edge["node"] for edge in (await client.execute(MODELS))["models"]["edges"]]
    finally:
        await client.close()


async def peer_service(b: NetworkGateway) -> dict[str, Any]:
    """B's one service not ended yet (each test stops its own)."""
    [node] = [
        edge["node"] for edge in (await b.served.client.execute(PEER_SERVICES))["services"]["edges"] if edge["node"]["state"] != "STOPPED"
    ]
    return dict(node)


async def ready_on_row(gateway: NetworkGateway, service_id: str, ready: int) -> bool:
    """Whether the gateway's own row of the service (read from its database) says ``ready`` replicas answer."""
    decoded = from_global_id(service_id)
    assert decoded is not None
    db = Database(gateway.database_url, schema=gateway.schema)
    try:
        async with db.read() as session:
            row = (await service_store.services_by_ids(session, [int(decoded[1])]))[int(decoded[1])]
    finally:
        await db.dispose()
    return row.ready_replicas == ready


async def test_a_service_on_the_peer_is_deployed_invoked_scaled_stopped_and_metered_once(network: dict[str, NetworkGateway]) -> None:
    a, b = network["a"], network["b"]
    gql = a.served.client
    model = await trained_model(a)
    model_id = model["id"]
    assert int(model["sizeBytes"]) > 2 * BIG  # a real model: twice the peer's body limit
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
    # the folder reached B whole: the same size and checksum (B computed it over what it unpacked)
    [sent] = await models_at_peer(a)
    assert (sent["sizeBytes"], sent["checksum"]) == (model["sizeBytes"], model["checksum"]), (sent, model)

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
    # the peer's count reaches A's row too, where A's replicas that do not run the services read it
    await eventually(lambda: ready_on_row(a, service["id"], 2), "A's row says two ready", timeout=10)

    stopped = (await gql.execute(STOP, {"id": service["id"]}))["stopService"]
    assert stopped["userErrors"] == [], stopped
    await wait_for_service(gql, service["id"], {"STOPPED"}, timeout=60)
    assert await ready_on_row(a, service["id"], 0)
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
    model_id = (await trained_model(a))["id"]
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
    await wait_for_service(gql, service["id"], {"READY", "DEPLOYING"}, timeout=60)
    assert (await gql.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
    await wait_for_service(gql, service["id"], {"STOPPED"}, timeout=60)
    assert len(await models_at_peer(a)) == 1  # the same files sent for a second service: the model they made


async def test_the_peer_is_followed_across_its_restart_and_a_replica_a_never_saw_is_metered_once(
    network: dict[str, NetworkGateway],
) -> None:
    a, b = network["a"], network["b"]
    model_id = (await trained_model(a))["id"]
    peer = (await center_ids(a.served.client))["PEER"]
    fields = {"modelId": model_id, "name": "followed", "centerId": peer, "scale": {"min": 1, "max": 2}, "idempotencyKey": "svc-3"}
    service = await deploy(a.served.client, **fields)
    await wait_for_service(a.served.client, service["id"], {"READY"}, timeout=90, ready=1, desired=1)
    remote_id = (await peer_service(b))["id"]

    # B restarts: A's link drops and subscribes again with `after`; what B does next reaches A as events
    await b.served.stop()
    await b.served.start()
    at_b = peer_client(a)
    try:
        assert (await at_b.execute(PEER_SCALE, {"id": remote_id, "min": 2, "max": 2}))["scaleService"]["userErrors"] == []
        await wait_for_service(a.served.client, service["id"], {"READY"}, timeout=90, ready=2, desired=2)
        assert (await at_b.execute(PEER_SCALE, {"id": remote_id, "min": 1, "max": 1}))["scaleService"]["userErrors"] == []
        await wait_for_service(a.served.client, service["id"], {"READY"}, timeout=90, ready=1, desired=1)

        # A stops; meanwhile B runs another replica and retires it: A never sees it running
        await a.served.stop()
        seen = await b.served.client.execute(AT_PEER, {"id": remote_id})
        before = {job["id"] for job in seen["node"]["replicaJobs"]}
        assert (await at_b.execute(PEER_SCALE, {"id": remote_id, "min": 2, "max": 2}))["scaleService"]["userErrors"] == []
        await wait_for_service(b.served.client, remote_id, {"READY"}, timeout=90, ready=2, desired=2)
        third = {job["id"] for job in (await b.served.client.execute(AT_PEER, {"id": remote_id}))["node"]["replicaJobs"]} - before
        assert len(third) == 1, third
        assert (await at_b.execute(PEER_SCALE, {"id": remote_id, "min": 1, "max": 1}))["scaleService"]["userErrors"] == []

        async def metered_at_b() -> bool:
            node = (await b.served.client.execute(AT_PEER, {"id": remote_id}))["node"]
            return third <= {edge["node"]["job"]["id"] for edge in node["usage"]["edges"]}

        await eventually(metered_at_b, "B metered the third replica at its end", timeout=60, interval=0.3)
    finally:
        await at_b.close()
    await a.served.start()
    gql = a.served.client

    async def metered_here() -> list[dict[str, Any]] | None:
        edges = (await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["edges"]
        found = [edge["node"] for edge in edges if edge["node"]["job"]["remoteId"] in third]
        return found or None

    [record] = await eventually(
        metered_here, "the replica A never saw running, metered at A from B's usage records", timeout=60, interval=0.3
    )
    assert Decimal(record["unitPrice"]["amount"]) == Decimal("11.5") and record["seconds"] > 0

    assert (await gql.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
    await wait_for_service(gql, service["id"], {"STOPPED"}, timeout=60)
    peer_usage = (await b.served.client.execute(AT_PEER, {"id": remote_id}))["node"]["usage"]

    async def all_metered() -> list[dict[str, Any]] | None:
        edges = (await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["edges"]
        return [edge["node"] for edge in edges] if len(edges) >= peer_usage["totalCount"] else None

    usage = await eventually(all_metered, "every replica B metered, metered at A", timeout=60, interval=0.3)
    # once each: one record per replica, the same replicas on both sides
    assert sorted(r["job"]["remoteId"] for r in usage) == sorted(e["node"]["job"]["id"] for e in peer_usage["edges"])
    period = datetime.now(UTC).strftime("%Y-%m")
    settled = (await gql.execute(SETTLEMENT, {"center": peer, "period": period}))["peerSettlement"]
    assert settled["agrees"] and settled["disagreements"] == [], settled
