"""Several gateway replicas (real `aicn serve` processes) over one PostgreSQL and one Redis are
interchangeable: a subscriber on one sees jobs submitted on another, the rate limit and token
revocation hold across them, and when the replica that reconciles the center is SIGKILLed
mid-job another takes its leases within 10 s, with every job ending once, metered once, and
its events gap-free."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets import Subprotocol

from resolvers.common.ids import int_key
from tests.client import GraphQLClient
from tests.conftest import DatabaseChoice
from tests.jobs_helpers import JOB, python_job, submit, wait_for_state
from tests.processes import folder_jobs_can_read
from tests.replica_set import CENTER_LEASE, holder_of, readiness, replica_set, wait_for_holder
from tests.served_gateway import ServedGateway
from tests.waiting import eventually

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share a server database

#: a lease that runs out fast, so that the take-over after a SIGKILL is measured on the expiry path
#: (the same-machine shortcut is turned off: it would take the leases at once)
FAST_LEASES = "lease_seconds = 4.0\nheartbeat_seconds = 1.0\nreclaim_dead_local_holders = false\n"

UPDATES = "subscription { jobUpdates { id name state } }"
VIEWER = "{ viewer { name } }"


@pytest.fixture
def go() -> Iterator[Path]:
    with folder_jobs_can_read() as folder:
        yield folder / "go"


def waits_then_reports(go: Path) -> str:
    return (
        "import json, os, time\n"
        "step = 0\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    step += 1\n"
        '    print("AICN_PROGRESS " + json.dumps({"step": step, "message": "waiting"}), flush=True)\n'
        "    time.sleep(0.3)\n"
    )


async def test_every_replica_is_ready_and_exactly_one_holds_each_lease(database: DatabaseChoice, tmp_path: Path) -> None:
    assert database.url is not None
    async with replica_set(tmp_path, database.url, database.schema, 3) as gateways:
        reports = [await readiness(gateway) for gateway in gateways]
        assert all(report["status"] == "ready" for report in reports)
        assert len({report["replica"] for report in reports}) == 3
        for lease in (CENTER_LEASE, "network-queue", "services", "transfers"):
            assert sum(lease in report["leases"] for report in reports) == 1, (lease, reports)
        assert reports[1]["leases"] == [] and reports[2]["leases"] == []  # ready while holding nothing


async def test_a_subscriber_on_one_replica_sees_a_job_submitted_on_another(database: DatabaseChoice, tmp_path: Path, go: Path) -> None:
    assert database.url is not None
    async with replica_set(tmp_path, database.url, database.schema, 2) as (leader, other):
        seen: list[dict[str, Any]] = []

        async def follow() -> None:  # jobUpdates reads nothing back: only the bus brings it news
            async for data in other.client.subscribe(UPDATES, timeout=30):
                seen.append(data["jobUpdates"])
                if data["jobUpdates"]["state"] == "SUCCEEDED":
                    return

        watcher = asyncio.create_task(follow())
        # submitted on the leader, which reconciles the center and writes the job's events; the job reports
        # progress until it is let go, so the follower hears of it whenever its subscription is in place
        job = await submit(leader.client, python_job(waits_then_reports(go), name="across"))
        await eventually(lambda: seen or watcher.done(), "the other replica's subscriber heard of the job", timeout=20)
        go.touch()
        await asyncio.wait_for(watcher, 30)
        assert {update["id"] for update in seen} == {job["id"]}
        assert seen[-1]["state"] == "SUCCEEDED"


async def test_the_rate_limit_is_one_bucket_across_the_replicas(database: DatabaseChoice, tmp_path: Path) -> None:
    assert database.url is not None
    limits = "[limits]\nbucket_size = 40\nmax_cost = 40\nrestore_rate = 0.01\n"
    async with replica_set(tmp_path, database.url, database.schema, 2, limits) as (first, second):
        # one token, through both replicas in turn: the same bucket drains twice as fast as either would alone
        clients = [GraphQLClient(first.url, first.token), GraphQLClient(second.url, first.token)]
        answers = []
        for index in range(60):
            answers.append((await clients[index % 2].post(VIEWER)).json())
        for client in clients:
            await client.close()
        allowed = [body for body in answers if "errors" not in body]
        refused = [body for body in answers if "errors" in body]
        cost = allowed[0]["extensions"]["cost"]["requestedQueryCost"]
        assert len(allowed) <= 40 // cost + 1, len(allowed)  # one bucket: two would let twice as many through
        assert refused and all(body["errors"][0]["extensions"]["code"] == "THROTTLED" for body in refused)
        assert {index % 2 for index, body in enumerate(answers) if "errors" in body} == {0, 1}  # refused on both replicas


async def socket_closed_with_4403(holder: GraphQLClient, revoker: ServedGateway) -> bool:
    """Open a subscription with a fresh token on ``holder``'s replica, revoke the token on ``revoker``: True
    once the holder's replica closes the WebSocket with 4403."""
    account = (await revoker.client.execute(ACCOUNT))["viewer"]["id"]
    created = (await revoker.client.execute(CREATE_TOKEN % account))["createApiToken"]
    async with websockets.connect(holder.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {created['secret']}"}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": UPDATES}}))
        await revoker.client.execute(REVOKE, {"id": created["token"]["id"]})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await socket.recv()
    return closed.value.rcvd is not None and closed.value.rcvd.code == 4403


CREATE_TOKEN = """
mutation { createApiToken(input: {accountId: "%s", name: "ci", scopes: [READ]}) { secret token { id } userErrors { code } } }
"""
REVOKE = "mutation Revoke($id: ID!) { revokeApiToken(input: {tokenId: $id}) { token { revokedAt } } }"
ACCOUNT = "{ viewer { id } }"


async def test_a_token_revoked_on_one_replica_is_refused_on_the_other_at_once(database: DatabaseChoice, tmp_path: Path) -> None:
    assert database.url is not None
    async with replica_set(tmp_path, database.url, database.schema, 2) as (first, second):
        account = (await first.client.execute(ACCOUNT))["viewer"]["id"]
        created = (await first.client.execute(CREATE_TOKEN % account))["createApiToken"]
        assert created["userErrors"] == []
        on_first, on_second = GraphQLClient(first.url, created["secret"]), GraphQLClient(second.url, created["secret"])
        try:
            assert "errors" not in (await on_first.post(VIEWER)).json()  # used on the first replica (a cache would hold it)
            assert "errors" not in (await on_second.post(VIEWER)).json()
            await second.client.execute(REVOKE, {"id": created["token"]["id"]})
            refused = await on_first.post(VIEWER)  # the very next request, on the other replica
            assert refused.status_code == 401, refused.text
            assert await socket_closed_with_4403(on_first, second)  # and its open WebSocket there is closed
            assert "errors" not in (await first.client.post(VIEWER)).json()  # the admin's own token still works there
        finally:
            await on_first.close()
            await on_second.close()


async def test_the_leader_sigkilled_mid_job_is_replaced_within_10_s_and_every_job_ends_once(
    database: DatabaseChoice, tmp_path: Path, go: Path
) -> None:
    assert database.url is not None
    async with replica_set(tmp_path, database.url, database.schema, 3, FAST_LEASES) as gateways:
        leader, _ = await wait_for_holder(gateways, CENTER_LEASE)
        assert leader is gateways[0]
        submitter = gateways[1]
        jobs = [await submit(submitter.client, python_job(waits_then_reports(go), name=f"through-{n}")) for n in range(2)]
        for job in jobs:
            await wait_for_state(submitter.client, job["id"], {"RUNNING"})

        async def progressed() -> bool:
            found = [(await submitter.client.execute(JOB, {"id": job["id"]}))["node"]["progress"] for job in jobs]
            return all(found)

        await eventually(progressed, "both jobs reported progress", timeout=20)
        killed_at = time.monotonic()
        leader.kill()  # mid-job: no release, no commit, nothing flushed
        survivors = [gateway for gateway in gateways if gateway is not leader]
        await wait_for_holder(survivors, CENTER_LEASE, timeout=15)
        took_over = time.monotonic() - killed_at
        # the successor reconciles: a new progress line of the still running jobs is recorded
        before = {job["id"]: len(await all_events(submitter, job["id"])) for job in jobs}

        async def recorded_again() -> bool:
            counts = {job["id"]: len(await all_events(submitter, job["id"])) for job in jobs}
            return all(counts[key] > before[key] for key in counts)

        await eventually(recorded_again, "the successor records the jobs' progress", timeout=10)
        reconciling_again = time.monotonic() - killed_at
        assert took_over < 10 and reconciling_again < 10, (took_over, reconciling_again)
        assert await holder_of(survivors, "network-queue") is not None
        go.touch()
        for job in jobs:
            await wait_for_state(submitter.client, job["id"], {"SUCCEEDED"}, timeout=30)
            events = await all_events(submitter, job["id"])
            assert [event["seq"] for event in events] == list(range(1, len(events) + 1))  # gap-free, none twice
            ends = [event for event in events if event["kind"] == "STATE" and event["state"] in {"SUCCEEDED", "FAILED", "CANCELLED"}]
            assert [event["state"] for event in ends] == ["SUCCEEDED"]
            assert [event["kind"] for event in events].count("USAGE") == 1
            states = [event["state"] for event in events if event["kind"] == "STATE"]
            assert len(states) == len(set(states)) and states[-1] == "SUCCEEDED", states  # no state written twice
        assert await usage_records_per_job(database) == {int_id(job["id"]): 1 for job in jobs}
        print(f"\nleader SIGKILLed: lease taken in {took_over:.2f} s, reconciling again after {reconciling_again:.2f} s")


async def all_events(gateway: ServedGateway, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job, paged through ``after: <seq>``."""
    events: list[dict[str, Any]] = []
    while True:
        node = (await gateway.client.execute(JOB_EVENTS, {"id": job_id, "after": events[-1]["seq"] if events else None}))["node"]
        page = [edge["node"] for edge in node["events"]["edges"]]
        if not page:
            return events
        events.extend(page)


JOB_EVENTS = """
query Job($id: ID!, $after: Int) { node(id: $id) { ... on Job { events(first: 100, after: $after) { edges { node { seq kind state } } } } } }
"""


def int_id(global_id: str) -> int:
    key = int_key(global_id, "Job")
    assert key is not None
    return key


async def usage_records_per_job(database: DatabaseChoice) -> dict[int, int]:
    assert database.url is not None
    engine = create_async_engine(database.url, connect_args={"server_settings": {"search_path": database.schema or "public"}})
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT job_id, count(*) FROM usage_records GROUP BY job_id"))
            return {int(job_id): int(count) for job_id, count in rows}
    finally:
        await engine.dispose()


def local_centers(*names: str) -> str:
    """More LOCAL centers, each its own folder in the replicas' shared data_dir."""
    return "".join(
        f'\n[[centers]]\nname = "{name}"\nkind = "LOCAL"\nregion = "test"\npoll_interval_seconds = 0.05\n'
        f'[[centers.devices]]\naccelerator = "cpu-core"\ncount = 2\nprice_per_unit_hour = "36000.00"\n'
        for name in names
    )


CENTERS = "{ centers { edges { node { id name capacity { byAccelerator { devicesTotal devicesAvailable } } } } } }"
SPREAD_CENTERS = ("center:local", "center:east", "center:west")


async def center_ids(gateway: ServedGateway) -> dict[str, str]:
    edges = (await gateway.client.execute(CENTERS))["centers"]["edges"]
    return {edge["node"]["name"]: edge["node"]["id"] for edge in edges}


async def center_leases(gateways: list[ServedGateway]) -> list[list[str]]:
    return [[lease for lease in (await readiness(gateway))["leases"] if lease.startswith("center:")] for gateway in gateways]


async def test_center_leases_spread_over_three_replicas_and_move_off_a_killed_one(
    database: DatabaseChoice, tmp_path: Path, go: Path
) -> None:
    assert database.url is not None
    async with replica_set(tmp_path, database.url, database.schema, 3, FAST_LEASES + local_centers("east", "west")) as gateways:

        async def spread() -> list[list[str]] | None:
            held = await center_leases(gateways)
            return held if [len(names) for names in held] == [1, 1, 1] else None

        held = await eventually(spread, "each replica holds one center's lease", timeout=30, interval=0.1)
        assert sorted(name for names in held for name in names) == sorted(SPREAD_CENTERS)
        view = (await readiness(gateways[2]))["replicas"]  # every replica's leases, seen from any of them
        assert sorted(view) == sorted([(await readiness(gateway))["replica"] for gateway in gateways])
        assert sorted(lease for leases in view.values() for lease in leases if lease.startswith("center:")) == sorted(SPREAD_CENTERS)

        ids = await center_ids(gateways[0])
        jobs = []
        for index, name in enumerate(("local", "east", "west")):
            job = python_job(
                waits_then_reports(go), name=f"on-{name}", request={"maxDurationMinutes": 1, "devices": 1, "centerIds": [ids[name]]}
            )
            jobs.append(await submit(gateways[index].client, job))
        for job in jobs:
            await wait_for_state(gateways[0].client, job["id"], {"RUNNING"})
        assert held == await center_leases(gateways)  # a stable set of replicas: nothing moved

        victim = gateways[1]
        moved = held[1][0]
        killed_at = time.monotonic()
        victim.kill()
        survivors = [gateways[0], gateways[2]]
        await wait_for_holder(survivors, moved, timeout=15)
        took_over = time.monotonic() - killed_at
        assert took_over < 10, took_over
        assert sorted(len(names) for names in await center_leases(survivors)) == [1, 2]
        go.touch()
        for job in jobs:
            await wait_for_state(gateways[0].client, job["id"], {"SUCCEEDED"}, timeout=30)
            events = await all_events(gateways[0], job["id"])
            assert [event["seq"] for event in events] == list(range(1, len(events) + 1))  # gap-free, none twice
            assert [event["kind"] for event in events].count("USAGE") == 1
            states = [event["state"] for event in events if event["kind"] == "STATE"]
            assert len(states) == len(set(states)) and states[-1] == "SUCCEEDED", states
        assert await usage_records_per_job(database) == {int_id(job["id"]): 1 for job in jobs}
        print(f"\n{moved} moved off the killed replica in {took_over:.2f} s")


def records_its_company(folder: Path, name: str) -> str:
    """A job that notes how many jobs of the center run beside it as it starts, then waits for ``go``."""
    return (
        "import os, time\n"
        f"folder = {str(folder)!r}\n"
        f"open(os.path.join(folder, 'started', {name!r}), 'w').close()\n"
        "company = len(os.listdir(os.path.join(folder, 'started'))) - len(os.listdir(os.path.join(folder, 'ended')))\n"
        f"open(os.path.join(folder, 'seen', {name!r}), 'w').write(str(company))\n"
        "while not os.path.exists(os.path.join(folder, 'go')):\n"
        "    time.sleep(0.05)\n"
        f"open(os.path.join(folder, 'ended', {name!r}), 'w').close()\n"
    )


async def free_devices(gateway: ServedGateway) -> int:
    edges = (await gateway.client.execute(CENTERS))["centers"]["edges"]
    return int(sum(unit["devicesAvailable"] for edge in edges for unit in edge["node"]["capacity"]["byAccelerator"]))


async def test_two_replicas_share_one_local_centers_capacity(database: DatabaseChoice, tmp_path: Path, go: Path) -> None:
    assert database.url is not None
    folder = go.parent
    for sub in ("started", "ended", "seen"):
        (folder / sub).mkdir()
        (folder / sub).chmod(0o1777)  # the jobs run as users of their own
    async with replica_set(tmp_path, database.url, database.schema, 2) as gateways:
        assert [await free_devices(gateway) for gateway in gateways] == [2, 2]
        first = await submit(gateways[0].client, python_job(records_its_company(folder, "job-0"), name="job-0"))
        await wait_for_state(gateways[0].client, first["id"], {"RUNNING"})
        # the job one replica started holds the host's device on the other replica too
        assert [await free_devices(gateway) for gateway in gateways] == [1, 1]
        jobs = [first]
        for index in range(1, 6):  # more than the center holds, through both replicas
            jobs.append(
                await submit(gateways[index % 2].client, python_job(records_its_company(folder, f"job-{index}"), name=f"job-{index}"))
            )
        await eventually(lambda: len(os.listdir(folder / "started")) >= 2, "the center runs two jobs", timeout=20)
        for gateway in gateways:

            async def full(gateway: ServedGateway = gateway) -> bool:
                return await free_devices(gateway) == 0

            await eventually(full, "both replicas see the center full", timeout=10)
        go.touch()
        for job in jobs:
            await wait_for_state(gateways[0].client, job["id"], {"SUCCEEDED"}, timeout=60)
        seen = {path.name: int(path.read_text()) for path in (folder / "seen").iterdir()}
        assert len(seen) == 6 and max(seen.values()) <= 2, seen  # never more than the center's two at once
        assert await usage_records_per_job(database) == {int_id(job["id"]): 1 for job in jobs}
