"""`jobUpdates` on group streams (graph/core/fanout_keyed.py): dashboards with the same operation,
variables, viewer and filter share one stream, one execution per update and the same bytes;
each keeps its own tenant, its own positions and its own slow-consumer bound.

Real gateway (uvicorn on loopback), real LOCAL jobs, real WebSockets."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.core.fanout_keyed import KeyedGroup
from graph.http.ws import SLOW_CONSUMER_CODE
from tests.client import GraphQLClient
from tests.conftest import GENEROUS_LIMITS, Gateway
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.test_auth import CREATE_TOKEN, REVOKE_TOKEN, new_account
from tests.test_subscription_fanout import Subscriber, counter, go_script, group_frames
from tests.waiting import eventually

UPDATES = """
subscription Dash($filter: JobFilter) { jobUpdates(filter: $filter) { id name state progress { step } } }
"""
BIG_UPDATES = "subscription Dash($filter: JobFilter) { jobUpdates(filter: $filter) { id name state environment } }"


@pytest.fixture
def go() -> Iterator[Path]:
    """A file the test creates to let a job go on; in a folder a job running as another user can see."""
    folder = Path(tempfile.mkdtemp(prefix="aicn-go-"))
    folder.chmod(0o755)
    yield folder / "go"
    shutil.rmtree(folder, ignore_errors=True)


def update_groups(gateway: Gateway) -> list[Any]:
    """The live `jobUpdates` group streams."""
    return [
        group
        for (_, entity), group in gateway.runtime.services.fanout.groups.items()
        if entity[0] == "JobUpdates" and not group.task.done()
    ]


def members(gateway: Gateway) -> int:
    return sum(len(group.members) for group in update_groups(gateway))


def updates(subscriber: Subscriber) -> list[dict[str, Any]]:
    return [data["jobUpdates"] for data in subscriber.data]


def ended(subscriber: Subscriber, job: dict[str, Any], state: str = "SUCCEEDED") -> bool:
    return any(update["id"] == job["id"] and update["state"] == state for update in updates(subscriber))


async def warm_up(gateway: Gateway, client: GraphQLClient, subscribers: list[Subscriber], name: str = "warm") -> None:
    """A short job whose updates every subscriber gets on its own stream, after which all have joined a group."""
    job = await submit(client, python_job("print('hi')", name=name))
    await wait_for_state(client, job["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, job) for s in subscribers), "the warm-up job's end reached everyone")


def progress_script(go: Path, steps: int, pause: float) -> str:
    return go_script(
        go,
        f"for step in range(1, {steps + 1}):\n    print('AICN_PROGRESS ' + json.dumps({{'step': step}}), flush=True)\n    time.sleep({pause})\n",
    )


async def test_forty_dashboards_get_the_same_bytes_from_one_execution_per_update_with_progress(gateway: Gateway, go: Path) -> None:
    base = gateway.runtime.bus.subscribers("jobs")  # the gateway's own listeners
    subscribers = [Subscriber(gateway.client, UPDATES, {"filter": None}) for _ in range(40)]
    await asyncio.gather(*(subscriber.open() for subscriber in subscribers))
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") == base + 40, "40 dashboards listening")
    readers = [asyncio.create_task(subscriber.read_all(timeout=120)) for subscriber in subscribers]
    await warm_up(gateway, gateway.client, subscribers)
    await eventually(lambda: len(update_groups(gateway)) == 1 and members(gateway) == 40, "one group of forty")
    assert gateway.runtime.bus.subscribers("jobs") == base + 1  # the group's one subscription instead of forty
    executions, frames = counter("aicn_subscription_executions"), group_frames()
    job = await submit(gateway.client, python_job(progress_script(go, 8, 0.4), name="steps"))
    await wait_for_state(gateway.client, job["id"], {"RUNNING"})
    go.touch()
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, job) for s in subscribers), "the job's end reached every dashboard")

    def of_the_job(subscriber: Subscriber) -> list[str]:
        return [text for text in subscriber.payload_texts() if job["id"] in text]

    live = of_the_job(subscribers[0])
    for subscriber in subscribers:
        assert of_the_job(subscriber) == live  # the same bytes, update for update
        assert {json.loads(frame)["id"] for frame in subscriber.frames} == {subscriber.id}  # each frame with its own id
    # every update went out from the group's one stream, executed once for all forty
    assert counter("aicn_subscription_executions") - executions == len(live)
    assert group_frames() - frames == 40 * len(live)
    assert gateway.runtime.bus.subscribers("jobs") == base + 1
    # and the dashboards saw the job progress, throttled, up to its last report
    rows = [update for update in updates(subscribers[0]) if update["id"] == job["id"]]
    steps = [row["progress"]["step"] for row in rows if row["state"] == "RUNNING" and row["progress"]]
    assert len(steps) >= 2 and steps == sorted(set(steps)), rows
    assert rows[-1]["state"] == "SUCCEEDED" and rows[-1]["progress"]["step"] == 8, rows
    for reader in readers:
        reader.cancel()


@pytest.mark.both_databases  # tenant isolation
async def test_another_tenant_and_another_filter_get_nothing_of_a_groups_jobs(gateway: Gateway, go: Path) -> None:
    _, _, alice = await new_account(gateway, "alice")
    _, _, bob = await new_account(gateway, "bob")
    # the same text and variables for everyone: only the viewer (Bob) or the filter's value tells them apart
    mine = [Subscriber(alice, UPDATES, {"filter": None}) for _ in range(5)]
    others = [Subscriber(bob, UPDATES, {"filter": None}) for _ in range(3)]
    narrow = [Subscriber(alice, UPDATES, {"filter": {"nameContains": "narrow"}}) for _ in range(3)]
    everyone = [*mine, *others, *narrow]
    await asyncio.gather(*(subscriber.open() for subscriber in everyone))
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") >= len(everyone), "all listening")
    readers = [asyncio.create_task(subscriber.read_all(timeout=120)) for subscriber in everyone]
    await warm_up(gateway, alice, mine, name="warm")
    await warm_up(gateway, bob, others, name="bobs")
    await warm_up(gateway, alice, narrow, name="narrow-warm")
    # three groups: Alice's, Bob's and Alice's narrow filter
    await eventually(lambda: len(update_groups(gateway)) == 3 and members(gateway) == len(everyone), "three groups")
    job = await submit(alice, python_job(progress_script(go, 3, 0.2), name="alices"))
    go.touch()
    await wait_for_state(alice, job["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, job) for s in mine), "Alice's dashboards got her job")
    # what Bob's and the narrow ones' group streams would have sent by now, they have sent
    closing = await submit(bob, python_job("print('hi')", name="bobs-last"))
    narrow_closing = await submit(alice, python_job("print('hi')", name="narrow-last"))
    await wait_for_state(bob, closing["id"], {"SUCCEEDED"})
    await wait_for_state(alice, narrow_closing["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, closing) for s in others), "Bob's last job reached Bob")
    await eventually(lambda: all(ended(s, narrow_closing) for s in narrow), "the narrow job reached the narrow dashboards")
    for subscriber in others:
        assert {update["name"] for update in updates(subscriber)} == {"bobs", "bobs-last"}
        assert "alice" not in "".join(subscriber.frames)
    for subscriber in narrow:
        assert {update["name"] for update in updates(subscriber)} == {"narrow-warm", "narrow-last"}
    for subscriber in mine:
        assert {update["name"] for update in updates(subscriber)} == {"warm", "alices", "narrow-warm", "narrow-last"}
    for reader in readers:
        reader.cancel()


async def test_a_revoked_dashboard_is_closed_while_its_group_goes_on(gateway: Gateway, go: Path) -> None:
    account_id, _, owner = await new_account(gateway, "dash")
    issued = await gateway.admin.execute(CREATE_TOKEN, {"input": {"accountId": account_id, "name": "second", "scopes": ["READ", "SUBMIT"]}})
    other = gateway.connect(issued["createApiToken"]["secret"])
    # the revoked one founds the group (its executor is the group's), the others join it
    doomed = Subscriber(owner, UPDATES, {"filter": None})
    await doomed.open()
    doomed_reader = asyncio.create_task(doomed.read_all(timeout=120))
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") >= 1, "the first dashboard listening")
    await warm_up(gateway, owner, [doomed], name="first")
    await eventually(lambda: members(gateway) == 1, "the group")
    kept = [Subscriber(other, UPDATES, {"filter": None}) for _ in range(5)]
    await asyncio.gather(*(subscriber.open() for subscriber in kept))
    readers = [asyncio.create_task(subscriber.read_all(timeout=120)) for subscriber in kept]
    await warm_up(gateway, owner, kept, name="second")
    await eventually(lambda: len(update_groups(gateway)) == 1 and members(gateway) == 6, "six members of one group")
    tokens = (await owner.execute("{ viewer { tokens { id name } } }"))["viewer"]["tokens"]
    await gateway.admin.execute(REVOKE_TOKEN, {"id": next(token["id"] for token in tokens if token["name"] == "dash-token")})
    await doomed_reader
    assert doomed.closed_with == 4403
    await eventually(lambda: members(gateway) == 5, "the group goes on with five")
    job = await submit(other, python_job(progress_script(go, 3, 0.2), name="after"))
    go.touch()
    await wait_for_state(other, job["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, job) for s in kept), "the others got the job after the revocation")
    assert len(update_groups(gateway)) == 1 and members(gateway) == 5  # still from the group's stream
    assert not any(update["name"] == "after" for update in updates(doomed))
    for reader in readers:
        reader.cancel()


async def test_a_dashboard_that_stops_reading_is_closed_and_the_others_go_on(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=GENEROUS_LIMITS.model_copy(update={"subscription_queue": 20}))
    blob = {"BLOB": "x" * 100_000}  # each update about 100 kB: a few dozen fill the kernel's socket buffers
    slow = Subscriber(gateway.client, BIG_UPDATES, {"filter": None}, receive_buffer=4096)
    fast = [Subscriber(gateway.client, BIG_UPDATES, {"filter": None}) for _ in range(3)]
    for subscriber in (slow, *fast):
        await subscriber.open()
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") >= 4, "4 dashboards listening")
    readers = [asyncio.create_task(subscriber.read_all(timeout=120)) for subscriber in fast]
    slow_warm = asyncio.create_task(slow.read_all(timeout=120))
    await warm_up(gateway, gateway.client, [slow, *fast])
    await eventually(lambda: len(update_groups(gateway)) == 1 and members(gateway) == 4, "one group of four")
    slow_warm.cancel()
    closed, frames = counter("aicn_slow_subscribers_closed"), group_frames()
    slow.socket.transport.pause_reading()  # from now on it reads nothing off its socket
    jobs = [await submit(gateway.client, python_job("print('hi')", name=f"big-{n}", environment=blob)) for n in range(16)]
    await eventually(lambda: counter("aicn_slow_subscribers_closed") > closed, "the slow dashboard is closed", timeout=90)
    for job in jobs:
        await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    await eventually(lambda: all(ended(s, job) for s in fast for job in jobs), "every job's end reached the fast ones", timeout=60)
    assert all(subscriber.closed_with is None for subscriber in fast)
    assert group_frames() - frames >= 3 * 16  # the fast ones' updates came from the group's stream
    slow.socket.transport.resume_reading()
    await slow.read_all()  # what reached its socket, then the close
    assert slow.closed_with == SLOW_CONSUMER_CODE
    await eventually(lambda: members(gateway) == 3, "the group goes on with the three")
    for reader in readers:
        reader.cancel()


async def test_members_whose_group_stream_fails_go_on_by_themselves_from_where_they_were(
    gateway: Gateway, go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribers = [Subscriber(gateway.client, UPDATES, {"filter": None}) for _ in range(5)]
    await asyncio.gather(*(subscriber.open() for subscriber in subscribers))
    readers = [asyncio.create_task(subscriber.read_all(timeout=120)) for subscriber in subscribers]
    await eventually(lambda: gateway.runtime.bus.subscribers("jobs") >= 5, "5 dashboards listening")
    await warm_up(gateway, gateway.client, subscribers)
    await eventually(lambda: len(update_groups(gateway)) == 1 and members(gateway) == 5, "one group of five")
    (failing,) = update_groups(gateway)
    # fault injection: the group's execution of the job's last row fails (as one with errors would);
    # no later change of the job would bring it again
    execute = KeyedGroup._execute
    failed: list[Any] = []

    async def fail_once(group: KeyedGroup, record: Any) -> str | None:
        if not failed and record.row.state == "SUCCEEDED":
            failed.append(record)
            return None
        return await execute(group, record)

    monkeypatch.setattr(KeyedGroup, "_execute", fail_once)
    job = await submit(gateway.client, python_job(progress_script(go, 3, 0.3), name="through"))
    go.touch()
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"})
    await eventually(lambda: failing.task.done(), "the group's stream has ended")
    await eventually(lambda: all(ended(s, job) for s in subscribers), "the job's end reached everyone")
    for subscriber in subscribers:
        rows = [update for update in updates(subscriber) if update["id"] == job["id"]]
        # the job the group could not send came on the member's own stream, and nothing came twice
        assert rows, updates(subscriber)
        assert len({json.dumps(row, sort_keys=True) for row in rows}) == len(rows), rows
        assert rows[-1]["progress"]["step"] == 3
    # and they have formed a group again
    await eventually(lambda: len(update_groups(gateway)) == 1 and members(gateway) == 5, "one group of five again")
    assert update_groups(gateway)[0] is not failing
    for reader in readers:
        reader.cancel()
