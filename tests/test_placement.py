"""Offers, placement by policy, failover, the network queue and quotas, through the graph."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from aicn.replica_settings import ReplicaSettings
from connectors.fault import FaultyConnector
from resolvers.jobs import dispatch
from store.tables import AccountRow
from tests.conftest import Gateway, local_center, require_service
from tests.data_helpers import file_at
from tests.jobs_helpers import CANCEL, SUBMIT, job_state, python_job, submit, wait_for_state
from tests.slurm_helpers import GPU, slurm_center
from tests.statements import task_statements
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases  # the network queue and quotas are kept in the database

OFFERS = """
query($request: ResourceRequestInput!, $policy: PlacementPolicy) {
  offers(request: $request, policy: $policy) {
    center { name } feasible reason devices standardUnits score estimatedStart
    computeUnit { accelerator { model } devicesAvailable }
    pricePerHour { amount currency } maxCost { amount }
  }
}
"""

PLACEMENT = """
query($id: ID!) { node(id: $id) { ... on Job { state center { name } request { accelerator devices }
  placement { policy waiting candidates { center { name } chosen score reason } }
  events(first: 100) { edges { node { kind state message } } } } } }
"""


def expected_price(price_per_unit_hour: str, units: float) -> Decimal:
    return (Decimal(price_per_unit_hour) * Decimal(str(units))).quantize(Decimal("0.000001"))


async def offers(gateway: Gateway, request: dict[str, Any], policy: str = "CHEAPEST") -> list[dict[str, Any]]:
    return (await gateway.client.execute(OFFERS, {"request": request, "policy": policy}))["offers"]


async def test_offers_compare_every_center_and_placement_takes_the_cheapest(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("dear", cores=2, price="0.90"), local_center("cheap", cores=1, price="0.30")])
    answer = await offers(gateway, {"devices": 1, "maxDurationMinutes": 120})
    assert [offer["center"]["name"] for offer in answer] == ["cheap", "dear"]
    cheap, dear = answer
    units = cheap["standardUnits"]
    assert cheap["feasible"] and dear["feasible"] and cheap["reason"] is None
    assert Decimal(cheap["pricePerHour"]["amount"]) == expected_price("0.30", units)
    assert Decimal(cheap["maxCost"]["amount"]) == (expected_price("0.30", units) * 2).quantize(Decimal("0.000001"))
    assert cheap["pricePerHour"]["currency"] == "CNY"
    job = await submit(gateway.client, python_job("import time; time.sleep(1)", name="cheapest"))
    assert job["center"]["name"] == "cheap"
    placed = (await gateway.client.execute(PLACEMENT, {"id": job["id"]}))["node"]
    assert placed["placement"]["policy"] == "CHEAPEST"
    assert [(c["center"]["name"], c["chosen"]) for c in placed["placement"]["candidates"]] == [("cheap", True), ("dear", False)]
    assert any(event["kind"] == "PLACEMENT" and "cheap" in event["message"] for event in (e["node"] for e in placed["events"]["edges"]))
    # the cheap center is now full: it still offers, but not now
    await wait_for_state(gateway.client, job["id"], {"RUNNING"})
    busy = await offers(gateway, {"devices": 1, "maxDurationMinutes": 120}, "EARLIEST_START")
    assert [offer["center"]["name"] for offer in busy] == ["dear", "cheap"]
    assert busy[1]["feasible"] is False and busy[1]["reason"].startswith("NOT_ENOUGH_FREE")
    assert busy[1]["estimatedStart"] is not None


async def test_earliest_start_prefers_a_free_center_over_a_cheaper_busy_one(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("dear", cores=1, price="0.90"), local_center("cheap", cores=1, price="0.30")])
    gql = gateway.client
    blocker = await submit(gql, python_job("import time; time.sleep(300)", name="blocker"))
    assert blocker["center"]["name"] == "cheap"
    await wait_for_state(gql, blocker["id"], {"RUNNING"})
    soon = await submit(gql, python_job("print(1)", name="soon", policy="EARLIEST_START"))
    assert soon["center"]["name"] == "dear"
    await gql.execute(CANCEL, {"id": blocker["id"]})


async def test_data_local_prefers_the_center_holding_the_inputs(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("near", price="0.90"), local_center("far", price="0.30")])
    gql = gateway.client
    near = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "near")
    registered = await gql.execute(
        "mutation($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id replicas { center { name } uri } } userErrors { code } } }",
        {"input": {"name": "corpus", "uri": (uri := file_at(gateway, "near", "corpus")), "replicas": [{"centerId": near, "uri": uri}]}},
    )
    dataset = registered["registerDataset"]["dataset"]
    assert dataset["replicas"] == [{"center": {"name": "near"}, "uri": uri}]  # verified: the gateway read it there
    local = await submit(gql, python_job("print(1)", name="local", policy="DATA_LOCAL", inputDatasetIds=[dataset["id"]]))
    cheap = await submit(gql, python_job("print(1)", name="cheap", inputDatasetIds=[dataset["id"]]))
    assert (local["center"]["name"], cheap["center"]["name"]) == ("near", "far")


async def test_a_failing_first_choice_fails_over_to_the_next_center(gateway_factory: Any) -> None:
    flaky = FaultyConnector("flaky", {"cpu-core": 4})
    gateway: Gateway = await gateway_factory(
        [local_center("steady", price="0.90"), local_center("flaky", price="0.10", failure_threshold=10)], {"flaky": flaky}
    )
    flaky.fault.refuse_submissions = True
    job = await submit(gateway.client, python_job("print('ran')", name="failover"))
    assert job["center"]["name"] == "steady"
    final = await wait_for_state(gateway.client, job["id"], {"SUCCEEDED", "FAILED"})
    assert final["state"] == "SUCCEEDED"
    messages = [
        e["node"]["message"]
        for e in (await gateway.client.execute(PLACEMENT, {"id": job["id"]}))["node"]["events"]["edges"]
        if e["node"]["kind"] == "PLACEMENT"
    ]
    assert messages[0].startswith("placed on flaky")
    assert "flaky failed" in messages[1] and "trying steady" in messages[1]
    assert messages[2].startswith("placed on steady")


async def test_jobs_wait_in_the_network_queue_and_start_in_order(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("only", cores=1)])
    gql = gateway.client
    jobs = [await submit(gql, python_job("import time; time.sleep(0.5)", name=f"queued-{n}")) for n in range(3)]
    assert [job["state"] for job in jobs[1:]] == ["QUEUED", "QUEUED"]
    waiting = (await gql.execute(PLACEMENT, {"id": jobs[2]["id"]}))["node"]
    assert waiting["center"] is None and waiting["placement"]["waiting"].startswith("WAITING")
    finals = [await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"}, timeout=30) for job in jobs]
    assert all(final["state"] == "SUCCEEDED" for final in finals)
    starts = [final["startedAt"] for final in finals]
    assert starts == sorted(starts)


async def test_an_idle_network_queue_costs_no_statement_until_a_job_waits(gateway_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "IDLE_QUEUE_SECONDS", 3600.0)
    center = FaultyConnector("flaky", {"cpu-core": 4})
    gateway: Gateway = await gateway_factory([local_center("flaky")], {"flaky": center})
    await eventually(lambda: gateway.runtime.dispatcher.queue_idle, "the queue's first round found no job waiting")
    with task_statements(gateway, "network-queue") as statements:
        await asyncio.sleep(2.5)  # the queue used to read the waiting jobs every second
        assert statements == []
        center.fault.refuse_submissions = True
        job = await submit(gateway.client, python_job("print(1)", name="refused-once"))
        assert job["state"] == "QUEUED"
        center.fault.refuse_submissions = False
        await eventually(lambda: center.submitted, "the woken queue handed the job over", timeout=10)
    assert statements  # the woken round's


async def test_while_jobs_wait_the_network_queue_looks_once_a_second_not_flat_out(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("only", cores=1)])
    jobs = [await submit(gateway.client, python_job("import time; time.sleep(30)", name=f"busy-{n}")) for n in range(3)]
    assert [job["state"] for job in jobs[1:]] == ["QUEUED", "QUEUED"]  # the center holds one: two wait
    with task_statements(gateway, "network-queue") as statements:
        await asyncio.sleep(3.0)  # the pace under test: three rounds' worth
    # a round's reads are a handful; a queue that woke itself for each job it re-waited ran hundreds a second
    assert 0 < len(statements) <= 40, len(statements)
    for job in jobs:
        await gateway.client.execute(CANCEL, {"id": job["id"]})


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share PostgreSQL and Redis
async def test_a_job_that_starts_waiting_on_another_replica_wakes_an_idle_network_queue(
    gateway_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    monkeypatch.setattr(dispatch, "IDLE_QUEUE_SECONDS", 3600.0)  # no safety-net round within the test: only a tell wakes it
    center = FaultyConnector("flaky", {"cpu-core": 4})
    center.fault.refuse_submissions = True
    bus = {"bus_url": "redis://127.0.0.1:6379/0", "bus_prefix": f"aicn-test-{uuid.uuid4().hex[:12]}:"}
    replicas: list[Gateway] = [
        await gateway_factory(
            [local_center("flaky")],
            {"flaky": center},
            replicas=ReplicaSettings(name=f"replica-{n}", lease_seconds=2.0, heartbeat_seconds=0.5),
            **bus,
        )
        for n in range(2)
    ]

    def idle_holder() -> Gateway | None:
        holder = next((replica for replica in replicas if replica.runtime.leases.holds("network-queue")), None)
        return holder if holder is not None and holder.runtime.dispatcher.queue_idle else None

    holder = await eventually(idle_holder, "a replica holds the network queue, and its round found no job waiting")
    other = next(replica for replica in replicas if replica is not holder)
    job = await submit(other.client, python_job("print(1)", name="refused-once"))  # the center refuses it: it waits
    assert job["state"] == "QUEUED" and center.calls["submit"] >= 1 and not center.submitted
    center.fault.refuse_submissions = False
    await eventually(lambda: center.submitted, "the queue's holder, told over the bus, handed the job over", timeout=10)
    placed = (await holder.client.execute(PLACEMENT, {"id": job["id"]}))["node"]
    assert placed["center"] == {"name": "flaky"} and placed["placement"]["waiting"] is None
    assert holder.runtime.leases.holds("network-queue")


async def test_a_queued_job_survives_a_gateway_restart(gateway_factory: Any) -> None:
    first: Gateway = await gateway_factory([local_center("only", cores=1)])
    running = await submit(first.client, python_job("import time; time.sleep(1.5)", name="holder"))
    waiting = await submit(first.client, python_job("print('after restart')", name="waiter"))
    assert waiting["state"] == "QUEUED"
    await first.stop()
    second: Gateway = await gateway_factory([local_center("only", cores=1)])
    for job in (running, waiting):
        assert (await wait_for_state(second.client, job["id"], {"SUCCEEDED", "FAILED"}, timeout=30))["state"] == "SUCCEEDED"


async def _set_quota(gateway: Gateway, units: float | None) -> None:
    async with gateway.runtime.db.transaction() as session:
        await session.execute(update(AccountRow).values(max_standard_units=units))


async def test_a_quota_makes_jobs_wait_until_units_free(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("big", cores=4)])
    gql = gateway.client
    core = gateway.runtime.catalog.get("cpu-core")
    assert core is not None
    await _set_quota(gateway, core.standard_units * 1.5)  # one core's worth at a time
    first = await submit(gql, python_job("import time; time.sleep(1)", name="within"))
    second = await submit(gql, python_job("print(2)", name="over"))
    assert first["state"] in {"STARTING", "RUNNING"} and second["state"] == "QUEUED"
    waiting = (await gql.execute(PLACEMENT, {"id": second["id"]}))["node"]
    assert "OVER_QUOTA" in waiting["placement"]["waiting"]
    over = await offers(gateway, {"devices": 2, "maxDurationMinutes": 5})
    assert over[0]["feasible"] is False and over[0]["reason"].startswith("OVER_QUOTA")
    final = await wait_for_state(gql, second["id"], {"SUCCEEDED", "FAILED"}, timeout=30)
    assert final["state"] == "SUCCEEDED"


async def test_a_quota_refuses_when_configured_to(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("big", cores=4)], quota_mode="refuse")
    core = gateway.runtime.catalog.get("cpu-core")
    assert core is not None
    await _set_quota(gateway, core.standard_units)
    payload = (await gateway.client.execute(SUBMIT, {"input": python_job("print(1)", request={"devices": 2, "maxDurationMinutes": 1})}))[
        "submitJob"
    ]
    assert payload["job"] is None and [error["code"] for error in payload["userErrors"]] == ["QUOTA_EXCEEDED"]
    assert (await gateway.client.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0


async def test_bad_resource_requests_are_refused(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("short", max_duration_minutes=10), local_center("long")])
    for request, code in [
        ({"maxDurationMinutes": 5}, "NO_RESOURCES"),
        ({"maxDurationMinutes": 5, "accelerator": "nvidia-b300"}, "UNKNOWN_ACCELERATOR"),
        ({"maxDurationMinutes": 5, "devices": 0}, "INVALID_DEVICES"),
        ({"maxDurationMinutes": 5, "standardUnits": 0}, "INVALID_UNITS"),
    ]:
        response = (await gateway.client.post(OFFERS, {"request": request})).json()
        assert response["errors"][0]["extensions"]["code"] == code, request
        payload = (await gateway.client.execute(SUBMIT, {"input": python_job("print(1)", request=request)}))["submitJob"]
        assert [error["code"] for error in payload["userErrors"]] == [code], request
    long_job = await offers(gateway, {"devices": 1, "maxDurationMinutes": 60})
    by_center = {offer["center"]["name"]: offer for offer in long_job}
    assert by_center["short"]["reason"].startswith("DURATION_OVER_LIMIT") and by_center["long"]["feasible"]
    gpu = (
        await gateway.client.execute(
            SUBMIT, {"input": python_job("print(1)", request={"accelerator": GPU, "devices": 1, "maxDurationMinutes": 5})}
        )
    )["submitJob"]
    assert [error["code"] for error in gpu["userErrors"]] == ["NO_FEASIBLE_CENTER"]
    assert (await gateway.client.execute("{ jobs { totalCount } }"))["jobs"]["totalCount"] == 0


@pytest.mark.slurm
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_local_and_slurm_offers_and_placement_together(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([local_center("local", price="0.50"), slurm_center(slurm_output_dir)])
    gql = gateway.client
    cpu = await offers(gateway, {"devices": 1, "maxDurationMinutes": 30})
    assert [offer["center"]["name"] for offer in cpu] == ["hpc", "local"]  # 0.40 beats 0.50 per unit-hour
    assert all(offer["feasible"] for offer in cpu)
    gpu = await offers(gateway, {"accelerator": GPU, "devices": 1, "maxDurationMinutes": 30})
    by_center = {offer["center"]["name"]: offer for offer in gpu}
    assert by_center["hpc"]["feasible"] and by_center["hpc"]["computeUnit"]["accelerator"]["model"] == GPU
    assert Decimal(by_center["hpc"]["pricePerHour"]["amount"]) == expected_price("2.00", by_center["hpc"]["standardUnits"])
    assert by_center["local"]["reason"].startswith("NO_SUCH_DEVICE")
    # "4 standard units on any fitting hardware": two A100s (3.12 each) at hpc
    any_units = await offers(gateway, {"standardUnits": 4, "maxDurationMinutes": 30})
    assert any_units[0]["center"]["name"] == "hpc" and any_units[0]["devices"] == 2
    job = await submit(
        gql, python_job("print('on a gpu')", name="gpu-job", request={"accelerator": GPU, "devices": 1, "maxDurationMinutes": 5})
    )
    assert job["center"]["name"] == "hpc" and job["request"]["accelerator"] == GPU
    assert (await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"}, timeout=60))["state"] == "SUCCEEDED"
    await asyncio.sleep(0)
    assert (await job_state(gql, job["id"]))["exitCode"] == 0


async def test_a_queued_job_keeps_the_price_quoted_at_submission(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("only", cores=1, price="0.50")])
    gql = gateway.client
    blocker = await submit(gql, python_job("import time; time.sleep(300)", name="blocker"))
    queued = await submit(gql, python_job("import time; time.sleep(1.2)", name="queued", minutes=10))
    assert queued["state"] == "QUEUED"
    holds = (await gql.execute("{ viewer { holds { amount } } }"))["viewer"]["holds"]["amount"]
    assert Decimal(holds) > 0
    center = gateway.runtime.registry.all()[0]
    center.offers = [replace(offer, price_per_unit_hour=Decimal("5.00")) for offer in center.offers]  # a price rise
    await gql.execute(CANCEL, {"id": blocker["id"]})
    await wait_for_state(gql, queued["id"], {"SUCCEEDED"}, timeout=30)
    usage = (
        await gql.execute(
            "query($id: ID!) { node(id: $id) { ... on Job { usage { unitPrice { amount } seconds } } } }", {"id": queued["id"]}
        )
    )["node"]["usage"]
    assert Decimal(usage["unitPrice"]["amount"]) == Decimal("0.50") and usage["seconds"] >= 1
    later = await submit(gql, python_job("print(1)", name="later"))
    await wait_for_state(gql, later["id"], {"SUCCEEDED"}, timeout=30)
    later_usage = (
        await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { usage { unitPrice { amount } } } } }", {"id": later["id"]})
    )["node"]["usage"]
    assert Decimal(later_usage["unitPrice"]["amount"]) == Decimal("5.00")


async def test_a_failed_over_job_holds_and_pays_the_terms_of_the_center_that_ran_it(gateway_factory: Any) -> None:
    flaky = FaultyConnector("cheap", {"cpu-core": 4})
    gateway: Gateway = await gateway_factory(
        [local_center("dear", price="0.90"), local_center("cheap", price="0.10", failure_threshold=10)], {"cheap": flaky}
    )
    flaky.fault.refuse_submissions = True  # the cheap first choice fails: the job runs at the dear one
    job = await submit(gateway.client, python_job("import time; time.sleep(1.2)", name="failover-priced", minutes=60))
    assert job["center"]["name"] == "dear"
    core = gateway.runtime.catalog.get("cpu-core")
    assert core is not None
    holds = (await gateway.client.execute("{ viewer { holds { amount } } }"))["viewer"]["holds"]["amount"]
    assert Decimal(holds) == (Decimal("0.90") * Decimal(str(core.standard_units))).quantize(Decimal("0.000001"))  # one hour at dear's price
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    usage = (
        await gateway.client.execute(
            "query($id: ID!) { node(id: $id) { ... on Job { usage { unitPrice { amount } } } } }", {"id": job["id"]}
        )
    )["node"]["usage"]
    assert Decimal(usage["unitPrice"]["amount"]) == Decimal("0.90")


@pytest.mark.slurm
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_slurm_refusing_a_job_fails_over_to_local_and_data_local_prefers_slurm(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([local_center("local", price="0.50"), slurm_center(slurm_output_dir)])
    gql = gateway.client
    # hpc is cheaper, but no node of it has 100 TB of memory: slurmctld refuses, the local center runs it
    huge = await submit(
        gql, python_job("print('ran locally')", name="huge", request={"devices": 1, "memoryGb": 100_000, "maxDurationMinutes": 5})
    )
    assert huge["center"]["name"] == "local"
    messages = [
        e["node"]["message"]
        for e in (await gql.execute(PLACEMENT, {"id": huge["id"]}))["node"]["events"]["edges"]
        if e["node"]["kind"] == "PLACEMENT"
    ]
    assert (
        messages[0].startswith("placed on hpc")
        and "hpc failed (CENTER_REJECTED" in messages[1]
        and messages[2].startswith("placed on local")
    )
    assert (await wait_for_state(gql, huge["id"], {"SUCCEEDED", "FAILED"}))["state"] == "SUCCEEDED"
    # data locality beats price: the inputs live at local, so local wins although hpc is cheaper
    local_id = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "local")
    dataset = (
        await gql.execute(
            "mutation($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } } }",
            {
                "input": {
                    "name": "shards",
                    "uri": (uri := file_at(gateway, "local", "shards")),
                    "replicas": [{"centerId": local_id, "uri": uri}],
                }
            },
        )
    )["registerDataset"]["dataset"]
    near = await submit(gql, python_job("print(1)", name="near-data", policy="DATA_LOCAL", inputDatasetIds=[dataset["id"]]))
    cheap = await submit(gql, python_job("print(1)", name="cheapest", inputDatasetIds=[dataset["id"]]))
    assert (near["center"]["name"], cheap["center"]["name"]) == ("local", "hpc")
    for job in (near, cheap):
        assert (await wait_for_state(gql, job["id"], {"SUCCEEDED", "FAILED"}, timeout=60))["state"] == "SUCCEEDED"
