"""PEER centers end to end: two real gateways (the peer B on PostgreSQL, the origin A on SQLite),
each a separate process with its own LOCAL center; A also has the real SLURM cluster, and sees
B's network as one center beside them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resolvers.common.ids import int_key
from tests.conftest import POSTGRES_URL, drop_schema, require_service
from tests.peer_network import NetworkGateway, start_gateway
from tests.processes import JOB_PYTHON
from tests.slurm_helpers import ENV_FILE
from tests.test_decimals import MONEY, strings_under

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slurm]

#: the origin's SLURM center (the real slurmrestd), dearer than both others
SLURM_CENTER = """
[[centers]]
name = "hpc"
kind = "SLURM"
poll_interval_seconds = 0.5
[[centers.devices]]
accelerator = "cpu-core"
count = 0
price_per_unit_hour = "500.00"
[centers.slurm]
url = "http://127.0.0.1:6820"
token_file = "{env_file}"
output_dir = "{output_dir}"
"""

PYTHON = JOB_PYTHON
PROGRESS = (
    "import json, time\n"
    "for step in range(1, 4):\n"
    "    print('step', step, flush=True)\n"
    "    print('AICN_PROGRESS ' + json.dumps({'fraction': step / 3, 'step': step, 'totalSteps': 3}), flush=True)\n"
    "    time.sleep(0.2)\n"
    "print('all done', flush=True)\n"
)

SUBMIT = """
mutation($input: SubmitJobInput!) {
  submitJob(input: $input) { job { id state remoteId center { id kind } } userErrors { code message } }
}
"""
JOB = """
query($id: ID!) { node(id: $id) { ... on Job { id state remoteId exitCode failureReason logs(tailLines: 5)
  center { id name kind } usage { amount { amount } unitPrice { amount } seconds } } } }
"""
EVENTS = "subscription($id: ID!) { jobEvents(jobId: $id) { seq kind state progress { fraction step } } }"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory, slurm_output_dir: str) -> AsyncIterator[dict[str, NetworkGateway]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6820, "slurmrestd (scripts/start-slurm.sh)")
    directory = tmp_path_factory.mktemp("peers")
    slurm = SLURM_CENTER.format(env_file=ENV_FILE, output_dir=slurm_output_dir)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    b = await start_gateway(directory, "b", POSTGRES_URL, schema, price="10.00")
    a: NetworkGateway | None = None
    try:
        a = await start_gateway(
            directory, "a", f"sqlite+aiosqlite:///{directory / 'a.db'}", None, price="100.00", peers=[b], markup="1.5", extra_centers=slurm
        )
        yield {"a": a, "b": b}
    finally:
        if a is not None:
            await a.served.stop()
        await b.served.stop()
        await drop_schema(POSTGRES_URL, schema)


def peer_center(centers: list[dict[str, Any]]) -> dict[str, Any]:
    return next(center for center in centers if center["kind"] == "PEER")


async def submit(a: NetworkGateway, command: list[str], **extra: Any) -> dict[str, Any]:
    payload = {"name": "delegated", "command": command, "request": {"cpus": 1, "maxDurationMinutes": 2}, **extra}
    answer = (await a.served.client.execute(SUBMIT, {"input": payload}))["submitJob"]
    assert not answer["userErrors"], answer
    return answer["job"]


async def test_the_peer_is_a_center_with_its_link_and_never_its_token(network: dict[str, NetworkGateway]) -> None:
    a, b = network["a"], network["b"]
    query = (
        "{ gateway { id } centers { edges { node { id name kind peer { url account version gatewayId latencyMs } status { state } } } } }"
    )
    from tests.waiting import eventually

    async def linked() -> dict[str, Any] | None:
        data = await a.served.client.execute(query)
        center = peer_center([edge["node"] for edge in data["centers"]["edges"]])
        return data if center["peer"]["gatewayId"] else None

    data = await eventually(linked, "the peer's first probe answered", timeout=10)
    center = peer_center([edge["node"] for edge in data["centers"]["edges"]])
    peer_gateway = (await b.served.client.execute("{ gateway { id version } }"))["gateway"]
    assert center["peer"] == {
        "url": b.graphql_url,
        "account": "peer-a",
        "version": peer_gateway["version"],
        "gatewayId": peer_gateway["id"],
        "latencyMs": center["peer"]["latencyMs"],
    }
    assert center["peer"]["latencyMs"] is not None and center["status"]["state"] == "UP"
    assert data["gateway"]["id"] != peer_gateway["id"]
    token = a.peers[0].token
    assert token not in str(data)
    assert token not in a.served.log.read_text()


async def test_compute_units_and_offers_of_the_peer_beside_local(network: dict[str, NetworkGateway]) -> None:
    a = network["a"]
    data = await a.served.client.execute(
        """{ computeUnits { edges { node { center { kind } accelerator { model } devicesTotal pricePerUnitHour { amount } } } }
             offers(request: {cpus: 1, maxDurationMinutes: 10}) { center { kind } feasible reason pricePerHour { amount } estimatedStart } }"""
    )
    units = {edge["node"]["center"]["kind"]: edge["node"] for edge in data["computeUnits"]["edges"]}
    assert units["PEER"]["accelerator"]["model"] == "cpu-core" and units["PEER"]["devicesTotal"] == 2
    assert Decimal(units["PEER"]["pricePerUnitHour"]["amount"]) == Decimal("11.5")  # the peer's 10.00 plus the markup
    assert Decimal(units["LOCAL"]["pricePerUnitHour"]["amount"]) == Decimal("100")
    offers = data["offers"]
    assert [offer["center"]["kind"] for offer in offers] == ["PEER", "LOCAL", "SLURM"]
    assert "SLURM" in units and all(offer["feasible"] for offer in offers), offers
    assert offers[0]["feasible"] and offers[0]["estimatedStart"]
    assert Decimal(offers[0]["pricePerHour"]["amount"]) == Decimal("11.5") * Decimal("0.0032")  # one core is 0.0032 standard units


async def test_a_job_placed_by_cheapest_runs_at_the_peer_followed_live(network: dict[str, NetworkGateway]) -> None:
    a, b = network["a"], network["b"]
    job = await submit(a, [PYTHON, "-c", PROGRESS], idempotencyKey=f"k-{uuid.uuid4().hex}")
    assert job["center"]["kind"] == "PEER" and job["remoteId"]
    events = [event async for event in a.served.client.subscribe(EVENTS, {"id": job["id"]}, timeout=30)]
    states = [event["jobEvents"]["state"] for event in events if event["jobEvents"]["kind"] == "STATE"]
    assert states[-1] == "SUCCEEDED", events
    fractions = [event["jobEvents"]["progress"]["fraction"] for event in events if event["jobEvents"]["kind"] == "PROGRESS"]
    assert fractions and fractions[-1] == pytest.approx(1.0)
    at_origin = (await a.served.client.execute(JOB, {"id": job["id"]}))["node"]
    assert at_origin["exitCode"] == 0 and at_origin["logs"].strip().endswith("all done")
    logs = "subscription($id: ID!) { jobLogs(jobId: $id, tailLines: 10) { lines truncated } }"
    batches = [batch["jobLogs"] async for batch in a.served.client.subscribe(logs, {"id": job["id"]}, timeout=30)]
    lines = [line for batch in batches for line in batch["lines"]]
    assert lines[-1] == "all done" and "step 3" in lines, batches  # read through the peer's Job.logBytes
    # the job at the peer belongs to the origin's account there, under the origin's opaque reference
    at_peer = (await b.served.client.execute(JOB + "", {"id": job["remoteId"]}))["node"]
    assert at_peer["state"] == "SUCCEEDED" and at_peer["center"]["kind"] == "LOCAL"
    owner = await b.served.client.execute(
        "query($id: ID!) { node(id: $id) { ... on Job { name owner { name } } } }", {"id": job["remoteId"]}
    )
    assert owner["node"]["owner"]["name"] == "peer-a"
    assert owner["node"]["name"].startswith("aicn-") and owner["node"]["name"] != "delegated"  # the opaque reference only


async def test_each_event_carries_the_job_as_of_that_event(network: dict[str, NetworkGateway]) -> None:
    """What the live link reads: the job's fields fresh with each event, not as the first event cached them."""
    b = network["b"]
    payload = {"name": "fresh", "command": [PYTHON, "-c", "print(1)"], "request": {"cpus": 1, "maxDurationMinutes": 1}}
    job = (await b.served.client.execute(SUBMIT, {"input": payload}))["submitJob"]["job"]
    query = "subscription($id: ID!) { jobEvents(jobId: $id) { kind state job { state startedAt exitCode } } }"
    events = [event["jobEvents"] async for event in b.served.client.subscribe(query, {"id": job["id"]}, timeout=30)]
    last = events[-1]
    assert last["state"] == "SUCCEEDED" and last["job"]["state"] == "SUCCEEDED" and last["job"]["exitCode"] == 0, events
    running = [event for event in events if event["state"] == "RUNNING"]
    assert all(event["job"]["startedAt"] for event in running), events


async def test_cancel_goes_through_the_peer(network: dict[str, NetworkGateway]) -> None:
    a, b = network["a"], network["b"]
    job = await submit(a, [PYTHON, "-c", "import time; print('started', flush=True); time.sleep(120)"])
    from tests.waiting import eventually

    async def state_at(gateway: NetworkGateway, job_id: str) -> str:
        return (await gateway.served.client.execute(JOB, {"id": job_id}))["node"]["state"]

    await eventually(lambda: _is(state_at(b, job["remoteId"]), "RUNNING"), "running at the peer", timeout=20)
    answer = await a.served.client.execute(
        "mutation($input: CancelJobInput!) { cancelJob(input: $input) { job { state } userErrors { code } } }",
        {"input": {"jobId": job["id"]}},
    )
    assert not answer["cancelJob"]["userErrors"]
    await eventually(lambda: _is(state_at(a, job["id"]), "CANCELLED"), "cancelled at the origin", timeout=20)
    assert await state_at(b, job["remoteId"]) == "CANCELLED"


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def test_a_busy_peer_offers_with_its_own_reason_and_estimated_start(network: dict[str, NetworkGateway]) -> None:
    """B's own users take its two cores: A's offer from B is B's NOT_ENOUGH_FREE, with B's estimate of when they free."""
    a, b = network["a"], network["b"]
    from tests.waiting import eventually

    payload = {"name": "b's own", "command": [PYTHON, "-c", "import time; time.sleep(60)"], "request": {"cpus": 1, "maxDurationMinutes": 3}}
    taken = [(await b.served.client.execute(SUBMIT, {"input": payload}))["submitJob"]["job"]["id"] for _ in range(2)]
    try:

        async def busy() -> dict[str, Any] | None:
            offers = (
                await a.served.client.execute(
                    "{ offers(request: {cpus: 1, maxDurationMinutes: 1}) { center { kind } feasible reason estimatedStart } }"
                )
            )["offers"]
            peer = next(offer for offer in offers if offer["center"]["kind"] == "PEER")
            return peer if not peer["feasible"] else None

        peer = await eventually(busy, "the peer's cores taken", timeout=20)
        assert peer["reason"].startswith("NOT_ENOUGH_FREE"), peer
        start = datetime.fromisoformat(peer["estimatedStart"])  # when B's jobs' 3-minute limits free a core
        assert timedelta(minutes=2) < start - datetime.now(UTC) < timedelta(minutes=4), peer
    finally:
        cancel = "mutation($input: CancelJobInput!) { cancelJob(input: $input) { userErrors { code } } }"
        for job_id in taken:
            await b.served.client.execute(cancel, {"input": {"jobId": job_id}})

        async def freed() -> bool:
            states = [(await b.served.client.execute(JOB, {"id": job_id}))["node"]["state"] for job_id in taken]
            return all(state == "CANCELLED" for state in states)

        await eventually(freed, "the peer's cores free again", timeout=20)


SETTLEMENT = """
query($center: ID!, $period: String!) {
  peerSettlement(centerId: $center, period: $period) {
    period jobsDelegated agrees
    originCharged { amount } expectedPeerCharge { amount } peerCharged { amount } margin { amount }
    disagreements { job { id } remoteId reason originAmount { amount } expectedPeerAmount { amount } peerAmount { amount } difference { amount } }
  }
}
"""


async def test_the_months_settlement_agrees_then_lists_a_planted_disagreement(network: dict[str, NetworkGateway]) -> None:
    """Runs after the jobs above: the origin's metering at the peer's price matches the peer's usage records."""
    a, b = network["a"], network["b"]
    centers = (await a.served.client.execute("{ centers { edges { node { id kind } } } }"))["centers"]["edges"]
    center_id = next(edge["node"]["id"] for edge in centers if edge["node"]["kind"] == "PEER")
    job = await submit(a, [PYTHON, "-c", "import time; time.sleep(1.2)"], centerId=center_id)
    from tests.waiting import eventually

    async def ended() -> bool:
        return (await a.served.client.execute(JOB, {"id": job["id"]}))["node"]["usage"] is not None

    await eventually(ended, "the job metered at the origin", timeout=30)
    period = datetime.now(UTC).strftime("%Y-%m")
    settled = (await a.served.client.execute(SETTLEMENT, {"center": center_id, "period": period}))["peerSettlement"]
    assert settled["agrees"], settled
    assert settled["jobsDelegated"] >= 3 and settled["disagreements"] == []
    peer_charged = Decimal(settled["peerCharged"]["amount"])
    assert peer_charged > 0 and Decimal(settled["expectedPeerCharge"]["amount"]) == peer_charged
    assert Decimal(settled["originCharged"]["amount"]) > peer_charged  # the markup
    assert Decimal(settled["margin"]["amount"]) == Decimal(settled["originCharged"]["amount"]) - peer_charged
    # the peer bills the origin's account at its own price: peer-a pays for exactly these jobs
    peer_bills = await b.served.client.execute("{ bills { edges { node { account { name } total { amount } } } } }")
    totals = {edge["node"]["account"]["name"]: Decimal(edge["node"]["total"]["amount"]) for edge in peer_bills["bills"]["edges"]}
    assert totals.get("peer-a") == peer_charged

    # the peer over-charges one job by 0.5: the settlement lists that job, and only it
    remote_key = int_key(job["remoteId"], "Job")
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(f'UPDATE "{b.schema}".usage_records SET amount = amount + 0.5 WHERE job_id = :job'), {"job": remote_key}
            )
    finally:
        await engine.dispose()
    settled = (await a.served.client.execute(SETTLEMENT, {"center": center_id, "period": period}))["peerSettlement"]
    assert not settled["agrees"]
    [line] = settled["disagreements"]
    assert line["job"]["id"] == job["id"] and line["remoteId"] == job["remoteId"]
    assert line["reason"] == "AMOUNT_DIFFERS" and Decimal(line["difference"]["amount"]) == Decimal("0.5")
    assert Decimal(line["peerAmount"]["amount"]) - Decimal(line["expectedPeerAmount"]["amount"]) == Decimal("0.5")
    amounts = strings_under(settled, "amount")  # every Money of a settlement, at the money scale (as test_decimals asks)
    assert len(amounts) == 8 and all(MONEY.match(amount) for amount in amounts), amounts


async def test_settlement_is_for_admins_and_peers_only(network: dict[str, NetworkGateway]) -> None:
    a = network["a"]
    centers = (await a.served.client.execute("{ centers { edges { node { id kind } } } }"))["centers"]["edges"]
    local_id = next(edge["node"]["id"] for edge in centers if edge["node"]["kind"] == "LOCAL")
    answer = (await a.served.client.post(SETTLEMENT, {"center": local_id, "period": "2026-01"})).json()
    assert answer["errors"][0]["extensions"]["code"] == "NOT_A_PEER"
    answer = (await a.served.client.post(SETTLEMENT, {"center": local_id, "period": "January"})).json()
    assert answer["errors"][0]["extensions"]["code"] in {"INVALID_PERIOD", "NOT_A_PEER"}
