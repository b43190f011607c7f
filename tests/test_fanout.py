"""Fan-out over many centers: partial answers, deadlines, the circuit breaker, call counts."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.fault import FaultyConnector
from tests.conftest import Gateway, local_center
from tests.waiting import subscribed

UNITS_QUERY = """
{
  computeUnits(first: 100) { edges { node { center { name } devicesTotal accelerator { model } } } }
  centers { edges { node { id name computeUnits { devicesTotal } status { state message } } } }
}
"""


def faulty_center(name: str, deadline: float = 0.4, **overrides: Any) -> Any:
    return local_center(name=name, deadline_seconds=deadline, probe_interval_seconds=0.2, **overrides)


async def start(
    gateway_factory: Any, faults: dict[str, str], deadline: float = 0.4, **center: Any
) -> tuple[Gateway, dict[str, FaultyConnector]]:
    connectors = {name: FaultyConnector(name) for name in faults}
    centers = [local_center()] + [faulty_center(name, deadline, **center) for name in faults]
    gateway = await gateway_factory(centers, connectors)
    for name, mode in faults.items():
        if mode == "slow":  # answers, but after its deadline
            connectors[name].set("ok", latency=deadline * 3)
        else:
            connectors[name].set(mode)
    return gateway, connectors


def center_ids(gateway: Gateway) -> dict[str, str]:
    return {center.name: center.global_id for center in gateway.runtime.registry.all()}


async def test_each_fault_costs_only_its_own_center(gateway_factory: Any) -> None:
    faults = {"broken": "error", "hanging": "hang", "slow": "slow", "timing-out": "timeout", "refusing": "refuse", "dropping": "disconnect"}
    gateway, _ = await start(gateway_factory, faults, failure_threshold=10)
    ids = center_ids(gateway)
    response = await gateway.client.post(UNITS_QUERY)
    assert response.status_code == 200
    body = response.json()
    units = [edge["node"] for edge in body["data"]["computeUnits"]["edges"]]
    assert units == [{"center": {"name": "local"}, "devicesTotal": 2, "accelerator": {"model": "cpu-core"}}]
    by_center = {node["name"]: node for node in (edge["node"] for edge in body["data"]["centers"]["edges"])}
    assert by_center["local"]["computeUnits"] == [{"devicesTotal": 2}]
    assert all(by_center[name]["computeUnits"] is None for name in faults)
    errors = {(error["extensions"]["center"], tuple(error["path"])): error["extensions"]["code"] for error in body["errors"]}
    expected_codes = {
        "broken": "CENTER_UNAVAILABLE",
        "hanging": "CENTER_TIMEOUT",
        "slow": "CENTER_TIMEOUT",
        "timing-out": "CENTER_TIMEOUT",
        "refusing": "CENTER_UNAVAILABLE",
        "dropping": "CENTER_UNAVAILABLE",
    }
    for name, code in expected_codes.items():
        assert errors[(ids[name], ("computeUnits",))] == code
        index = list(by_center).index(name)
        assert errors[(ids[name], ("centers", "edges", index, "node", "computeUnits"))] == code


async def test_the_breaker_opens_skips_fast_and_closes_when_the_center_answers(gateway_factory: Any) -> None:
    gateway, connectors = await start(gateway_factory, {"flaky": "hang"}, deadline=0.5, failure_threshold=2)
    gql = gateway.client
    changes: list[str] = []

    async def watch() -> None:
        async for data in gql.subscribe("subscription { centerStatus { name status { state } } }"):
            changes.append(data["centerStatus"]["status"]["state"])
            if changes[-2:] == ["DOWN", "UP"]:
                return

    watcher = await subscribed(gateway.runtime.bus, "centers", watch())
    for _ in range(3):
        await gql.post("{ computeUnits { totalCount } }")
    status = await gql.execute("{ centers { edges { node { name status { state message } } } } }")
    flaky = next(edge["node"] for edge in status["centers"]["edges"] if edge["node"]["name"] == "flaky")
    assert flaky["status"]["state"] == "DOWN" and flaky["status"]["message"]
    calls_before = connectors["flaky"].calls["capacity"]
    response = (await gql.post("{ computeUnits { totalCount } }")).json()
    assert connectors["flaky"].calls["capacity"] == calls_before  # skipped: nobody waits on its deadline
    assert response["data"]["computeUnits"]["totalCount"] == 1
    assert response["errors"][0]["extensions"]["code"] == "CENTER_UNAVAILABLE"
    connectors["flaky"].set("ok")
    await asyncio.wait_for(watcher, 10)
    assert "DOWN" in changes and changes[-1] == "UP"
    healed = await gql.execute("{ computeUnits { totalCount } }")
    assert healed["computeUnits"]["totalCount"] == 2


async def test_each_center_is_asked_once_per_request_whatever_asks(gateway_factory: Any) -> None:
    gateway, connectors = await start(gateway_factory, {"a": "ok", "b": "ok"})
    query = """{
      computeUnits { totalCount }
      capacity { standardUnitsTotal byAccelerator { devicesTotal } }
      centers { edges { node { computeUnits { id } capacity { standardUnitsTotal } } } }
    }"""
    before = {name: connector.calls["capacity"] for name, connector in connectors.items()}
    await gateway.client.execute(query)
    assert {name: connector.calls["capacity"] - before[name] for name, connector in connectors.items()} == {"a": 1, "b": 1}


async def test_a_centers_new_answer_is_served_not_the_nodes_of_its_last(gateway_factory: Any) -> None:
    # an unchanged answer reuses the units made of the last one: a changed answer must not
    gateway, connectors = await start(gateway_factory, {"a": "ok"})
    query = "{ computeUnits(first: 100) { edges { node { center { name } devicesTotal standardUnitsTotal } } } }"

    async def units_of_a() -> list[tuple[int, float]]:
        edges = (await gateway.client.execute(query))["computeUnits"]["edges"]
        return [
            (edge["node"]["devicesTotal"], edge["node"]["standardUnitsTotal"]) for edge in edges if edge["node"]["center"]["name"] == "a"
        ]

    [(devices, units)] = await units_of_a()
    assert devices == 4 and await units_of_a() == [(4, units)]
    connectors["a"].devices["cpu-core"] = 6
    assert await units_of_a() == [(6, round(units * 6 / 4, 4))]


async def test_centers_are_asked_concurrently(gateway_factory: Any) -> None:
    names = [f"slow-{n}" for n in range(8)]
    shared = FaultyConnector("shared", latency=0.2)  # one object behind every slow center counts overlap
    gateway = await gateway_factory([local_center()] + [faulty_center(name, 2.0) for name in names], {name: shared for name in names})
    data = await gateway.client.execute("{ computeUnits(first: 100) { totalCount } }")
    assert data["computeUnits"]["totalCount"] == 9
    assert shared.max_in_flight["capacity"] == len(names)  # all eight in flight at once, not one after another


async def test_a_job_the_center_forgot_ends_lost_not_running_forever(gateway_factory: Any) -> None:
    forgetful = FaultyConnector("forgetful", {"cpu-core": 2})
    gateway = await gateway_factory([faulty_center("forgetful", 2.0)], {"forgetful": forgetful}, vanished_grace_seconds=0.5)
    job = (
        await gateway.client.execute(
            'mutation { submitJob(input: {name: "x", command: ["true"], request: {devices: 1, maxDurationMinutes: 1}}) { job { id state } } }'
        )
    )["submitJob"]["job"]
    assert job["state"] == "QUEUED"  # the center queued it
    forgetful.submitted.clear()  # ... and then forgot it
    for _ in range(100):
        node = (
            await gateway.client.execute("query($id: ID!) { node(id: $id) { ... on Job { state failureReason } } }", {"id": job["id"]})
        )["node"]
        if node["state"] != "QUEUED":
            break
        await asyncio.sleep(0.1)
    assert node["state"] == "FAILED" and node["failureReason"].startswith("LOST")
