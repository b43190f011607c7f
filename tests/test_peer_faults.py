"""PEER faults on real gateways: a peer killed and restarted mid-job (no event lost, none twice),
a silent peer (CENTER_TIMEOUT, the breaker), a job the peer forgot (LOST after the grace period),
a revoked peer token (CENTER_UNAUTHORIZED). Each costs only the peer's own entries."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from resolvers.common.ids import int_key
from tests.peer_network import NetworkGateway, PeerLinkSpec, gateway_config, start_gateway
from tests.processes import JOB_PYTHON
from tests.served_gateway import ServedGateway
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PYTHON = JOB_PYTHON
STEPS = 8
PROGRESS = (
    "import json, time\n"
    f"for step in range(1, {STEPS + 1}):\n"
    f"    print('AICN_PROGRESS ' + json.dumps({{'fraction': step / {STEPS}, 'step': step}}), flush=True)\n"
    "    time.sleep(0.4)\n"
)
SUBMIT = "mutation($input: SubmitJobInput!) { submitJob(input: $input) { job { id remoteId center { kind } } userErrors { code } } }"
JOB = "query($id: ID!) { node(id: $id) { ... on Job { state failureReason progress { step } remoteId } } }"
UNITS = "{ computeUnits { edges { node { center { kind } } } } }"
STATUS = "{ centers { edges { node { id kind status { state message } } } } }"
EVENTS = "subscription($id: ID!) { jobEvents(jobId: $id) { seq kind state progress { step } } }"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[NetworkGateway, NetworkGateway]]:
    directory = tmp_path_factory.mktemp("peer-faults")
    b = await start_gateway(directory, "b", f"sqlite+aiosqlite:///{directory / 'b.db'}", None, price="10.00")
    a: NetworkGateway | None = None
    try:
        a = await start_gateway(
            directory, "a", f"sqlite+aiosqlite:///{directory / 'a.db'}", None, price="100.00", peers=[b], grace_seconds=2.0
        )
        yield a, b
    finally:
        if a is not None:
            await a.served.stop()
        await b.served.stop()


async def submit(gateway: NetworkGateway, command: list[str]) -> dict[str, Any]:
    payload = {"name": "faulty", "command": command, "request": {"cpus": 1, "maxDurationMinutes": 2}}
    answer = (await gateway.served.client.execute(SUBMIT, {"input": payload}))["submitJob"]
    assert not answer["userErrors"] and answer["job"]["center"]["kind"] == "PEER", answer
    return answer["job"]


async def peer_status(a: NetworkGateway) -> dict[str, Any]:
    edges = (await a.served.client.execute(STATUS))["centers"]["edges"]
    return next(edge["node"] for edge in edges if edge["node"]["kind"] == "PEER")


async def test_a_peer_killed_and_restarted_mid_job_loses_no_event(pair: tuple[NetworkGateway, NetworkGateway]) -> None:
    a, b = pair
    job = await submit(a, [PYTHON, "-c", PROGRESS])

    async def watch() -> list[dict[str, Any]]:
        return [event["jobEvents"] async for event in a.served.client.subscribe(EVENTS, {"id": job["id"]}, timeout=60)]

    watcher = asyncio.create_task(watch())

    async def stepped() -> bool:
        progress = (await a.served.client.execute(JOB, {"id": job["id"]}))["node"]["progress"]
        return bool(progress and progress["step"] >= 2)

    await eventually(stepped, "two progress reports at the origin", timeout=20)
    b.served.kill()
    # the peer's trouble is its own: the origin still answers with its LOCAL units, and names the peer
    answer = (await a.served.client.post(UNITS)).json()
    assert [edge["node"]["center"]["kind"] for edge in answer["data"]["computeUnits"]["edges"]] == ["LOCAL"]
    center = await peer_status(a)
    assert answer["errors"][0]["extensions"]["code"] == "CENTER_UNAVAILABLE"
    assert answer["errors"][0]["extensions"]["center"] == center["id"]
    await eventually(lambda: _state(a, "DOWN"), "the breaker open", timeout=15)
    await b.served.start()
    await eventually(lambda: _state(a, "UP"), "the breaker closed again", timeout=15)
    events = await asyncio.wait_for(watcher, 60)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    steps = [event["progress"]["step"] for event in events if event["kind"] == "PROGRESS"]
    assert steps == list(range(1, STEPS + 1)), events  # each report once, in order, across the restart
    assert events[-1]["state"] == "SUCCEEDED"


async def _state(a: NetworkGateway, wanted: str) -> bool:
    return bool((await peer_status(a))["status"]["state"] == wanted)


async def test_a_job_the_peer_forgot_ends_lost_after_the_grace_period(pair: tuple[NetworkGateway, NetworkGateway]) -> None:
    a, b = pair
    job = await submit(a, [PYTHON, "-c", "import time; time.sleep(30)"])
    remote = int_key(job["remoteId"], "Job")
    database = Path(str(b.database_url).removeprefix("sqlite+aiosqlite:///"))

    def forget() -> None:
        with sqlite3.connect(database, timeout=10) as connection:
            connection.execute("PRAGMA foreign_keys = OFF")
            for table in ("job_events", "job_inputs", "usage_records"):
                try:
                    connection.execute(f"DELETE FROM {table} WHERE job_id = ?", (remote,))
                except sqlite3.OperationalError:
                    pass  # a table this version does not have
            connection.execute("DELETE FROM jobs WHERE id = ?", (remote,))

    async def running() -> bool:
        return bool((await a.served.client.execute(JOB, {"id": job["id"]}))["node"]["state"] == "RUNNING")

    await eventually(running, "running at the peer", timeout=20)
    await asyncio.to_thread(forget)

    async def lost() -> dict[str, Any] | None:
        found = (await a.served.client.execute(JOB, {"id": job["id"]}))["node"]
        return found if found["state"] == "FAILED" else None

    ended = await eventually(lost, "LOST at the origin", timeout=30)
    assert ended["failureReason"].startswith("LOST")


async def test_a_silent_peer_times_out_and_trips_only_its_breaker(tmp_path: Path, pair: tuple[NetworkGateway, NetworkGateway]) -> None:
    """A peer that accepts connections and never answers: CENTER_TIMEOUT within the deadline, then DOWN."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepted, never answered
    try:
        link = PeerLinkSpec("peer-silent", f"http://127.0.0.1:{silent.getsockname()[1]}/graphql", "aicn_silent-peer-token-0123456789")
        config = gateway_config(tmp_path / "o", f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", None, price="1.00", peers=[link])
        text = config.read_text().replace("deadline_seconds = 5", "deadline_seconds = 0.5")
        config.write_text(text)
        origin = ServedGateway(config)
        await origin.start()
        try:
            answer = (await origin.client.post(UNITS)).json()
            assert [edge["node"]["center"]["kind"] for edge in answer["data"]["computeUnits"]["edges"]] == ["LOCAL"]
            assert answer["errors"][0]["extensions"]["code"] == "CENTER_TIMEOUT"
            assert answer["errors"][0]["extensions"]["centerName"] == "peer-silent"

            async def down() -> bool:
                edges = (await origin.client.execute(STATUS))["centers"]["edges"]
                return any(edge["node"]["kind"] == "PEER" and edge["node"]["status"]["state"] == "DOWN" for edge in edges)

            await eventually(down, "the silent peer's breaker open", timeout=15)
            assert "aicn_silent-peer-token" not in origin.log.read_text()
        finally:
            await origin.stop()
    finally:
        silent.close()


async def test_a_revoked_peer_token_is_a_coded_error_on_that_center(pair: tuple[NetworkGateway, NetworkGateway]) -> None:
    """Last: it leaves the pair without a working link."""
    a, b = pair
    revoke = "mutation($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) { userErrors { code } } }"
    await b.served.client.execute(revoke, {"input": {"tokenId": a.peers[0].token_id}})
    answer = (await a.served.client.post(UNITS)).json()
    assert [edge["node"]["center"]["kind"] for edge in answer["data"]["computeUnits"]["edges"]] == ["LOCAL"]
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "CENTER_UNAUTHORIZED" and error["extensions"]["centerName"] == "peer-b"
    assert "token" in error["message"] and a.peers[0].token not in str(answer)
