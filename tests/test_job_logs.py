"""jobLogs: the tail, then every line as the job writes it, until the job ends (LOCAL here; SLURM and RAY
in test_job_logs_centers.py), with the bounds that keep one subscription cheap whatever a job prints."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from connectors.base import Connector
from connectors.fault import FaultyConnector
from tests.client import GraphQLClient
from tests.conftest import GENEROUS_LIMITS, Gateway, local_center
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.test_auth import new_account

LOGS = "subscription($id: ID!, $tail: Int) { jobLogs(jobId: $id, tailLines: $tail) { lines truncated dropped } }"

TICKING = """
import sys, time
for i in range(int(sys.argv[1])):
    print(f"tick {i}", flush=True)
    time.sleep(float(sys.argv[2]))
"""


async def collect(gql: GraphQLClient, job_id: str, tail: int | None = 100, timeout: float = 30) -> list[dict[str, Any]]:
    messages = []
    async for data in gql.subscribe(LOGS, {"id": job_id, "tail": tail}, timeout=timeout):
        messages.append(data["jobLogs"])
    return messages


def lines_of(messages: list[dict[str, Any]]) -> list[str]:
    return [line for message in messages for line in message["lines"]]


async def test_the_tail_then_each_line_live_until_the_job_ends(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, _ticking(8, 0.3))
    received: list[tuple[float, list[str]]] = []
    started = time.monotonic()
    async for data in gql.subscribe(LOGS, {"id": job["id"], "tail": 100}):
        received.append((time.monotonic() - started, data["jobLogs"]["lines"]))
    lines = [line for _, batch in received for line in batch]
    assert lines == [f"tick {i}" for i in range(8)]
    # live: the lines came in several messages while the job ran, not all at its end
    assert len([batch for _, batch in received if batch]) >= 3
    state = await wait_for_state(gql, job["id"], {"SUCCEEDED"})
    assert state["state"] == "SUCCEEDED"
    # after the end: the tail alone, and the stream completes
    again = await collect(gql, job["id"], tail=3)
    assert lines_of(again) == ["tick 5", "tick 6", "tick 7"] and not again[0]["truncated"]
    assert lines_of(await collect(gql, job["id"], tail=0)) == []


def _ticking(count: int, pause: float) -> dict[str, Any]:
    job = python_job(TICKING)
    job["command"] = [*job["command"], str(count), str(pause)]
    return job


async def test_a_queued_job_streams_once_it_starts(gateway: Gateway) -> None:
    gql = gateway.client
    blockers = [await submit(gql, _ticking(1, 3)) for _ in range(2)]  # the center has 2 cores
    waiting = await submit(gql, _ticking(3, 0.1))
    messages = await collect(gql, waiting["id"])
    assert lines_of(messages) == ["tick 0", "tick 1", "tick 2"]
    for blocker in blockers:
        await wait_for_state(gql, blocker["id"], {"SUCCEEDED"})


async def test_lines_beyond_the_rate_are_dropped_and_counted(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory(limits=GENEROUS_LIMITS.model_copy(update={"log_lines_per_second": 50}))
    gql = gateway.client
    # the job floods once the test's subscriber has seen it start (a go file), never before it listens
    folder = Path(tempfile.mkdtemp(prefix="aicn-flood-"))
    folder.chmod(0o755)  # the job may run as a uid of its own
    go = folder / "go"
    flood = (
        "import os, time\nprint('ready', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.01)\n"
        "for i in range(5000):\n    print(f'line {i}')\n"
    )
    job = await submit(gql, python_job(flood))
    messages: list[dict[str, Any]] = []
    try:
        async for data in gql.subscribe(LOGS, {"id": job["id"], "tail": 1}, timeout=30):
            messages.append(data["jobLogs"])
            if "ready" in data["jobLogs"]["lines"]:
                go.touch()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = lines_of(messages)
    own = [line for line in lines if line.startswith("line ")]
    markers = [line for line in lines if line.startswith("[aicn: ") and "lines dropped" in line]
    dropped = sum(message["dropped"] for message in messages)
    assert markers and dropped > 0 and all(message["truncated"] for message in messages if message["dropped"])
    assert len(own) + dropped == 5000
    assert len(own) <= 50 * 3  # a second of burst, and the little time the job took


async def test_one_enormous_line_is_cut_and_the_stream_goes_on(gateway: Gateway) -> None:
    gql = gateway.client
    script = "import sys, time\ntime.sleep(0.5)\nsys.stdout.write('x' * (16 * 1024 * 1024) + '\\n')\nprint('after the long line')\n"
    job = await submit(gql, python_job(script))
    started = time.monotonic()
    messages = await collect(gql, job["id"], tail=10)
    lines = lines_of(messages)
    assert lines[-1] == "after the long line"
    long = [line for line in lines if line.startswith("xxx")]
    assert len(long) == 1 and len(long[0]) < 17 * 1024 and "more bytes of this line not shown" in long[0]
    assert any(message["truncated"] for message in messages)
    assert time.monotonic() - started < 20
    # the gateway still answers at once while such a job runs
    started = time.perf_counter()
    await gql.execute("{ viewer { id } }")
    assert time.perf_counter() - started < 1.0


async def test_another_accounts_job_and_bad_arguments_are_refused(gateway: Gateway) -> None:
    job = await submit(gateway.client, _ticking(1, 0))
    _, _, stranger = await new_account(gateway, "stranger")
    for client, variables, code in (
        (stranger, {"id": job["id"], "tail": 10}, "NOT_FOUND"),
        (gateway.client, {"id": "Sm9iOjk5OTk5OTk5", "tail": 10}, "NOT_FOUND"),
        (gateway.client, {"id": job["id"], "tail": -1}, "BAD_USER_INPUT"),
        (gateway.client, {"id": job["id"], "tail": 10_001}, "BAD_USER_INPUT"),
    ):
        with pytest.raises(AssertionError) as refused:
            await collect(client, variables["id"], tail=variables["tail"])
        assert code in str(refused.value), (variables, refused.value)


async def test_revoking_the_token_closes_the_log_stream(gateway: Gateway) -> None:
    account_id, secret, client = await new_account(gateway, "follower")
    job = await submit(client, _ticking(200, 0.1))
    token_id = (await client.execute("{ viewer { tokens { id } } }"))["viewer"]["tokens"][0]["id"]
    async with websockets.connect(client.ws_url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": {"token": secret}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "logs", "type": "subscribe", "payload": {"query": LOGS, "variables": {"id": job["id"]}}}))
        first = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert first["type"] == "next", first
        await gateway.admin.execute(
            "mutation($id: ID!) { revokeApiToken(input: {tokenId: $id}) { userErrors { code } } }", {"id": token_id}
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    await gateway.client.execute("mutation($id: ID!) { cancelJob(input: {jobId: $id}) { userErrors { code } } }", {"id": job["id"]})
    assert account_id


class _ReadsNoLogs(FaultyConnector):
    """A connector kind written before read_log: the base class's answer."""

    read_log = Connector.read_log


async def _open_stream(gateway: Gateway, job_id: str) -> Any:
    return gateway.client.subscribe(LOGS, {"id": job_id, "tail": 5}, timeout=20).__aiter__()


async def test_a_center_that_stops_answering_is_named_once_then_its_return(gateway_factory: Any) -> None:
    faulty = FaultyConnector("flaky")
    gateway: Gateway = await gateway_factory([local_center("flaky", deadline_seconds=0.4, probe_interval_seconds=0.2)], {"flaky": faulty})
    job = await submit(gateway.client, _ticking(1, 0))
    faulty.set("refuse")
    stream = await _open_stream(gateway, job["id"])
    first = (await anext(stream))["jobLogs"]
    assert first["truncated"] and first["lines"][0].startswith("[aicn: center flaky is unavailable") and "still trying" in first["lines"][0]
    faulty.set("ok")
    following = (await anext(stream))["jobLogs"]  # the tail, once the center answers again
    assert following["lines"] == []
    back = (await anext(stream))["jobLogs"]
    assert back["lines"] == ["[aicn: center flaky answers again]"]
    await stream.aclose()


async def test_a_center_kind_without_incremental_reads_says_so_and_completes(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("old")], {"old": _ReadsNoLogs("old")})
    job = await submit(gateway.client, _ticking(1, 0))
    messages = await collect(gateway.client, job["id"])
    assert lines_of(messages) == ["[aicn: LOCAL centers cannot read a job's output incrementally]"] and messages[0]["truncated"]
