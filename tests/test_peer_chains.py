"""Chains and loops of peers: three real gateways A -> B -> C -> A (each its own process and
database). A job from A runs at C through B; a job never travels back to a gateway on its path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from connectors.base import JobSpec
from connectors.peer.client import PeerLoop
from connectors.peer.connector import PeerConnector
from tests.peer_network import NetworkGateway, account_token, relink, start_gateway
from tests.processes import JOB_PYTHON
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PYTHON = JOB_PYTHON
SUBMIT = """
mutation($input: SubmitJobInput!) {
  submitJob(input: $input) { job { id state remoteId center { name kind } } userErrors { code message } }
}
"""
JOB = """
query($id: ID!) { node(id: $id) { ... on Job { id state remoteId logs(tailLines: 3) center { name kind }
  placement { candidates { center { name } chosen reason } } } } }
"""
CENTERS = "{ gateway { id } centers { edges { node { id name } } } }"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ring(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, NetworkGateway]]:
    """A -> B -> C -> A: C's own cores are the cheapest, A's the dearest."""
    directory = tmp_path_factory.mktemp("ring")
    started: list[NetworkGateway] = []
    try:
        a = await start_gateway(directory, "a", f"sqlite+aiosqlite:///{directory / 'a.db'}", None, price="100.00")
        started.append(a)
        c = await start_gateway(directory, "c", f"sqlite+aiosqlite:///{directory / 'c.db'}", None, price="1.00", peers=[a])
        started.append(c)
        b = await start_gateway(directory, "b", f"sqlite+aiosqlite:///{directory / 'b.db'}", None, price="50.00", peers=[c])
        started.append(b)
        await relink(a, [b])
        yield {"a": a, "b": b, "c": c}
    finally:
        for gateway in started:
            await gateway.served.stop()


async def node(gateway: NetworkGateway, job_id: str) -> dict[str, Any]:
    return (await gateway.served.client.execute(JOB, {"id": job_id}))["node"]


async def submit(gateway: NetworkGateway, command: list[str], **extra: Any) -> dict[str, Any]:
    payload = {"name": "chained", "command": command, "request": {"cpus": 1, "maxDurationMinutes": 2}, **extra}
    answer = (await gateway.served.client.execute(SUBMIT, {"input": payload}))["submitJob"]
    assert not answer["userErrors"], answer
    return answer["job"]


async def test_capacity_of_a_ring_counts_each_gateway_once(ring: dict[str, NetworkGateway]) -> None:
    a = ring["a"]
    data = await a.served.client.execute("{ capacity { byAccelerator { center { name } devicesTotal } } }")
    by_center = {unit["center"]["name"]: unit["devicesTotal"] for unit in data["capacity"]["byAccelerator"]}
    # A's own 2 cores, and through B: B's 2 and C's 2 (C's link back to A counts nothing: A is on the path)
    assert by_center == {"local": 2, "peer-b": 4}


async def test_a_job_from_a_runs_at_c_through_b(ring: dict[str, NetworkGateway]) -> None:
    a, b, c = ring["a"], ring["b"], ring["c"]
    job = await submit(a, [PYTHON, "-c", "print('ran at the end of the chain')"])
    assert job["center"]["name"] == "peer-b"

    async def done(gateway: NetworkGateway, job_id: str) -> dict[str, Any] | None:
        found = await node(gateway, job_id)
        return found if found["state"] == "SUCCEEDED" else None

    at_a = await eventually(lambda: done(a, job["id"]), "SUCCEEDED at A", timeout=30)
    at_b = await node(b, at_a["remoteId"])
    assert at_b["center"]["name"] == "peer-c"
    at_c = await node(c, at_b["remoteId"])
    assert at_c["center"]["name"] == "local" and at_c["state"] == "SUCCEEDED"
    assert "ran at the end of the chain" in at_a["logs"]


async def test_a_gateway_on_the_path_refuses_the_call(ring: dict[str, NetworkGateway]) -> None:
    a = ring["a"]
    own = (await a.served.client.execute(CENTERS))["gateway"]["id"]
    answer = await a.served.client.post("{ capacity { standardUnitsTotal } }", headers={"aicn-via": f"gw-elsewhere,{own}"})
    assert answer.status_code == 409
    assert answer.json()["errors"][0]["extensions"]["code"] == "PEER_LOOP"


async def test_a_hand_over_back_to_a_gateway_on_the_path_is_refused(ring: dict[str, NetworkGateway]) -> None:
    a = ring["a"]
    own = (await a.served.client.execute(CENTERS))["gateway"]["id"]
    secret, _ = await account_token(a.served, "loop-probe")
    connector = PeerConnector("to-a", a.graphql_url, secret, gateway_id="gw-probe")
    spec = JobSpec(reference="loop-probe-1", name="loop", command=(PYTHON, "-c", "pass"), max_duration_seconds=60, via=(own, "gw-probe"))
    try:
        with pytest.raises(PeerLoop) as refused:
            await connector.submit(spec)
        assert refused.value.code == "PEER_LOOP"
    finally:
        await connector.close()
    jobs = (await a.served.client.execute('{ jobs(filter: {nameContains: "loop"}) { edges { node { id } } } }'))["jobs"]
    assert jobs["edges"] == []  # nothing was made


async def test_a_job_that_would_loop_is_placed_elsewhere_with_the_coded_reason(ring: dict[str, NetworkGateway]) -> None:
    """B hands a job to C; C's cores are taken, so C hands it to A; A must not hand it back to B."""
    b, c, a = ring["b"], ring["c"], ring["a"]
    sleepers = [await submit(c, [PYTHON, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:

        async def running(job_id: str) -> bool:
            return (await node(c, job_id))["state"] == "RUNNING"

        for sleeper in sleepers:
            await eventually(lambda sleeper=sleeper: running(sleeper["id"]), "C's cores taken", timeout=20)
        centers = {e["node"]["name"]: e["node"]["id"] for e in (await b.served.client.execute(CENTERS))["centers"]["edges"]}
        job = await submit(b, [PYTHON, "-c", "print('placed away from the loop')"], centerId=centers["peer-c"])
        at_c = await eventually(lambda: _with_remote(c, job["remoteId"]) if job["remoteId"] else None, "handed on by C", timeout=20)
        assert at_c["center"]["name"] == "peer-a"
        at_a = await node(a, at_c["remoteId"])
        reasons = {candidate["center"]["name"]: candidate for candidate in at_a["placement"]["candidates"]}
        assert at_a["center"]["name"] == "local"
        assert reasons["peer-b"]["reason"].startswith("PEER_LOOP"), reasons
        assert not reasons["peer-b"]["chosen"]
    finally:
        for sleeper in sleepers:
            await c.served.client.execute(
                "mutation($input: CancelJobInput!) { cancelJob(input: $input) { userErrors { code } } }",
                {"input": {"jobId": sleeper["id"]}},
            )


async def _with_remote(gateway: NetworkGateway, job_id: str) -> dict[str, Any] | None:
    found = await node(gateway, job_id)
    return found if found["remoteId"] else None
