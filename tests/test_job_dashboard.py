"""What a dashboard reads of jobs, through the graph: cost so far and holds, priorities and
queue positions, sorted and time-ranged lists, counts per state, a center's queue, and
jobUpdates with a snapshot, a resume and throttled progress."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.fault import FaultyConnector
from tests.billing_helpers import PRICE
from tests.client import GraphQLClient
from tests.conftest import Gateway, local_center
from tests.jobs_helpers import CANCEL, PROGRESS_SCRIPT, python_job, submit, wait_for_state
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases  # costs, counts, sorting and the queue's order are the database's answers

MONEY_FIELDS = """
query($id: ID!) { node(id: $id) { ... on Job { state priority queuePosition costSoFar { amount currency } hold { amount }
  usage { amount { amount } } } } }
"""
LIST = """
query($first: Int, $after: String, $order: JobOrder!, $filter: JobFilter) {
  jobs(first: $first, after: $after, orderBy: $order, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { name usage { amount { amount } } } } } }
"""
STATS = "query($filter: JobFilter) { jobStats(filter: $filter) { total byState { state count } } }"
UPDATES = """
subscription($snapshot: Boolean!, $since: DateTime, $filter: JobFilter) {
  jobUpdates(snapshot: $snapshot, since: $since, filter: $filter) { id name state updatedAt progress { step } } }
"""


async def job_money(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await gql.execute(MONEY_FIELDS, {"id": job_id}))["node"]


async def walk(gql: GraphQLClient, order: str, filter: dict[str, Any] | None = None) -> list[str]:
    """Every job's name in ``order``, one job per page."""
    names: list[str] = []
    after = None
    while True:
        page = (await gql.execute(LIST, {"first": 1, "after": after, "order": order, "filter": filter}))["jobs"]
        names += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return names
        after = page["pageInfo"]["endCursor"]


async def test_cost_so_far_grows_while_running_and_is_the_usage_once_ended(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE)])
    gql = gateway.client
    job = await submit(gql, python_job("import time; time.sleep(2.5)"))
    await wait_for_state(gql, job["id"], {"RUNNING"})
    running = await eventually(lambda: _costing(gql, job["id"]), "a running job's cost so far above zero", timeout=10, interval=0.2)
    assert running["hold"] == {"amount": "1.920000"} and running["queuePosition"] is None
    assert Decimal("0") < Decimal(running["costSoFar"]["amount"]) <= Decimal("1.92") and running["costSoFar"]["currency"] == "CNY"
    await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    ended = await job_money(gql, job["id"])
    assert ended["hold"] is None and ended["costSoFar"]["amount"] == ended["usage"]["amount"]["amount"]
    assert Decimal(ended["costSoFar"]["amount"]) >= Decimal(running["costSoFar"]["amount"])


async def _costing(gql: GraphQLClient, job_id: str) -> dict[str, Any] | None:
    node = await job_money(gql, job_id)
    return node if node["costSoFar"] and Decimal(node["costSoFar"]["amount"]) > 0 else None


async def test_priority_orders_the_network_queue_and_queue_position_follows_it(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("only", cores=1)])
    gql = gateway.client
    holder = await submit(gql, python_job("import time; time.sleep(1.5)", name="holder"))
    low = await submit(gql, python_job("print('low')", name="low"))
    high = await submit(gql, python_job("print('high')", name="high", priority=50))
    middle = await submit(gql, python_job("print('middle')", name="middle", priority=10))
    assert [job["state"] for job in (low, high, middle)] == ["QUEUED"] * 3
    positions = {
        name: (await job_money(gql, job["id"]))["queuePosition"] for name, job in (("low", low), ("high", high), ("middle", middle))
    }
    assert positions == {"high": 1, "middle": 2, "low": 3}
    assert (await job_money(gql, holder["id"]))["queuePosition"] is None
    finals = {
        name: await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=30)
        for name, job in (("low", low), ("high", high), ("middle", middle))
    }
    starts = sorted(finals, key=lambda name: finals[name]["startedAt"])
    assert starts == ["high", "middle", "low"]
    bad = await gql.execute(
        "mutation($input: SubmitJobInput!) { submitJob(input: $input) { userErrors { code field } } }",
        {"input": python_job("print(1)", priority=101)},
    )
    assert bad["submitJob"]["userErrors"] == [{"code": "INVALID_PRIORITY", "field": ["priority"]}]


async def test_job_lists_sort_by_newest_oldest_and_cost_with_keyset_pages_and_a_time_range(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(price=PRICE, cores=4)])
    gql = gateway.client
    submitted: list[dict[str, Any]] = []
    for name, devices in (("one", 1), ("three", 3), ("two-a", 2), ("two-b", 2)):
        job = await submit(gql, python_job("print(1)", name=name, request={"devices": devices, "maxDurationMinutes": 1}))
        submitted.append(await wait_for_state(gql, job["id"], {"SUCCEEDED"}))
    holder = await submit(gql, python_job("import time; time.sleep(30)", name="holder", request={"devices": 4, "maxDurationMinutes": 1}))
    await wait_for_state(gql, holder["id"], {"RUNNING"})
    never = await submit(gql, python_job("print(1)", name="never"))
    assert never["state"] == "QUEUED"  # every core is taken: it waits and is cancelled before it runs
    for job in (never, holder):
        await gql.execute(CANCEL, {"id": job["id"]})
        await eventually(lambda job=job: _state(gql, job["id"], "CANCELLED"), "a cancelled job", timeout=15)
    await eventually(lambda: _metered(gql, holder["id"]), "the holder's usage")
    names = ["one", "three", "two-a", "two-b", "holder", "never"]

    assert await walk(gql, "NEWEST") == names[::-1]
    assert await walk(gql, "OLDEST") == names
    listed = (await gql.execute(LIST, {"first": 10, "order": "NEWEST"}))["jobs"]["edges"]
    cost = {e["node"]["name"]: Decimal(e["node"]["usage"]["amount"]["amount"]) if e["node"]["usage"] else Decimal(0) for e in listed}
    assert cost["never"] == 0 and cost["three"] > cost["two-a"] == cost["two-b"] > 0
    # dearest first; equal costs newest first; each job exactly once across one-job pages
    assert await walk(gql, "COST") == sorted(names, key=lambda name: (-cost[name], -names.index(name)))

    since_three = {"submittedAfter": await _submitted_at(gql, submitted[1]["id"])}
    assert await walk(gql, "OLDEST", since_three) == names[1:]
    window = {**since_three, "submittedBefore": await _submitted_at(gql, submitted[2]["id"])}
    assert await walk(gql, "NEWEST", window) == ["three"]
    assert await walk(gql, "COST", window) == ["three"]
    newest_cursor = (await gql.execute(LIST, {"first": 1, "order": "NEWEST"}))["jobs"]["pageInfo"]["endCursor"]
    mixed = (await gql.post(LIST, {"first": 1, "order": "COST", "after": newest_cursor})).json()
    assert mixed["data"] is None or mixed["data"]["jobs"] is None
    assert mixed["errors"][0]["message"] == "the cursor is not valid for orderBy: COST"


async def _metered(gql: GraphQLClient, job_id: str) -> bool:
    return (await job_money(gql, job_id))["usage"] is not None


async def _submitted_at(gql: GraphQLClient, job_id: str) -> str:
    return str(
        (await gql.execute("query($id: ID!) { node(id: $id) { ... on Job { submittedAt } } }", {"id": job_id}))["node"]["submittedAt"]
    )


async def test_job_stats_count_per_state_and_a_center_counts_its_queue(gateway_factory: Any) -> None:
    holding = FaultyConnector("holding", {"cpu-core": 8})  # accepts jobs and keeps them QUEUED at the center
    gateway: Gateway = await gateway_factory([local_center("local", cores=2), local_center("holding", price="0.10")], {"holding": holding})
    gql = gateway.client
    held = [await submit(gql, python_job("print(1)", name=f"held-{n}")) for n in range(3)]
    assert {job["center"]["name"] for job in held} == {"holding"}
    ran = await submit(gql, python_job("print(1)", name="ran", policy="EARLIEST_START", centerId=_center(gateway, "local")))
    await wait_for_state(gql, ran["id"], {"SUCCEEDED"})
    cancelling = (await gql.execute(CANCEL, {"id": held[0]["id"]}))["cancelJob"]["job"]
    assert cancelling["state"] == "CANCELLING"  # the holding center never confirms it
    stats = (await gql.execute(STATS))["jobStats"]
    counts = {entry["state"]: entry["count"] for entry in stats["byState"]}
    assert stats["total"] == 4 and counts["QUEUED"] == 2 and counts["SUCCEEDED"] == 1 and counts["CANCELLING"] == 1
    assert counts["RUNNING"] == 0 and len(counts) >= 8
    only_held = (await gql.execute(STATS, {"filter": {"nameContains": "held"}}))["jobStats"]
    assert only_held["total"] == 3
    lengths = (await gql.execute("{ centers { edges { node { name queueLength } } } }"))["centers"]["edges"]
    assert {edge["node"]["name"]: edge["node"]["queueLength"] for edge in lengths} == {"local": 0, "holding": 2}
    other = gateway.connect((await gateway.runtime.access.create_token(await _other_account(gateway), "other", ["read"])).secret)
    assert (await other.execute(STATS))["jobStats"]["total"] == 0  # the caller's jobs only


def _center(gateway: Gateway, name: str) -> str:
    return next(center.global_id for center in gateway.runtime.registry.all() if center.name == name)


async def _state(gql: GraphQLClient, job_id: str, state: str) -> bool:
    return bool((await job_money(gql, job_id))["state"] == state)


async def _other_account(gateway: Gateway) -> int:
    outcome = await gateway.runtime.access.create_account("someone-else")
    assert outcome.account is not None
    return outcome.account.id


async def test_job_updates_start_with_a_snapshot_resume_after_a_reconnect_and_throttle_progress(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center(cores=2)])
    gql = gateway.client
    before = await submit(gql, python_job("print(1)", name="before"))
    await wait_for_state(gql, before["id"], {"SUCCEEDED"})

    snapshot: list[dict[str, Any]] = []
    async for data in gql.subscribe(UPDATES, {"snapshot": True}):
        snapshot.append(data["jobUpdates"])
        break
    assert snapshot[0]["name"] == "before" and snapshot[0]["state"] == "SUCCEEDED"
    resume_from = snapshot[0]["updatedAt"]

    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async for data in gql.subscribe(UPDATES, {"snapshot": False, "filter": {"nameContains": "steps"}}):
            seen.append(data["jobUpdates"])

    watcher = asyncio.create_task(watch())
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") > 0, "the jobUpdates subscription")
    script = PROGRESS_SCRIPT.replace("range(1, 4)", "range(1, 11)").replace("time.sleep(0.2)", "time.sleep(0.1)")
    stepping = await submit(gql, python_job(script, name="steps"))
    await wait_for_state(gql, stepping["id"], {"SUCCEEDED"})
    await eventually(lambda: seen and seen[-1]["state"] == "SUCCEEDED", "the job's end on jobUpdates")
    watcher.cancel()
    progress_steps = [update["progress"]["step"] for update in seen if update["state"] == "RUNNING" and update["progress"]]
    assert progress_steps, seen  # progress changes are reported, not only states
    assert len(progress_steps) < 10 and seen[-1]["progress"]["step"] == 10  # throttled, and the last report is not lost
    assert progress_steps == sorted(progress_steps)

    resumed: list[dict[str, Any]] = []
    async for data in gql.subscribe(UPDATES, {"snapshot": False, "since": resume_from}):
        resumed.append(data["jobUpdates"])
        if data["jobUpdates"]["name"] == "steps":
            break
    assert [update["name"] for update in resumed][-1] == "steps" and resumed[-1]["state"] == "SUCCEEDED"
    assert all(datetime.fromisoformat(update["updatedAt"]) >= datetime.fromisoformat(resume_from) for update in resumed)


async def test_a_forged_cost_cursor_is_a_coded_error(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory()
    for forged in ("cost:1.0000001:5", "cost:1e400:5", "cost:NaN:5", "cost:1:x", "other:1:5"):
        cursor = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
        body = (await gateway.client.post(LIST, {"first": 1, "order": "COST", "after": cursor})).json()
        assert body["errors"][0]["message"] == "the cursor is not valid for orderBy: COST", (forged, body)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
