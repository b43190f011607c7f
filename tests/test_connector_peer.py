"""The shared conformance suite against a PEER center: a real aicn gateway (its own process,
database and LOCAL center of 2 cores), reached with a token of an account made there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from connectors.base import CenterJobState, StatusQuery
from connectors.errors import CenterRefusedCredentials, CenterUnreachable, SubmissionRejected
from connectors.peer.connector import PeerConnector
from resolvers.data.digest import measure_path
from resolvers.data.downloads import plan
from tests.connector_contract import ConnectorContract
from tests.peer_network import NetworkGateway, account_token, start_gateway
from tests.processes import JOB_PYTHON
from tests.service_helpers import SERVER_SCRIPT
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def peer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[NetworkGateway, str]]:
    directory = tmp_path_factory.mktemp("peer-contract")
    gateway = await start_gateway(directory, "leaf", f"sqlite+aiosqlite:///{directory / 'leaf.db'}", None, price="10.00")
    try:
        secret, _ = await account_token(gateway.served, "contract")
        yield gateway, secret
    finally:
        await gateway.served.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def connector(peer: tuple[NetworkGateway, str]) -> AsyncIterator[PeerConnector]:
    gateway, secret = peer
    connector = PeerConnector("peer-under-test", gateway.graphql_url, secret, gateway_id="gw-contract-origin")
    await connector.start()
    try:
        yield connector
    finally:
        await connector.close()


class TestPeerConformance(ConnectorContract):
    settle_seconds = 30.0


async def test_a_refused_token_is_a_coded_error_without_the_token(peer: tuple[NetworkGateway, str]) -> None:
    gateway, _ = peer
    wrong = "aicn_not-a-token-of-this-peer-0123456789"
    connector = PeerConnector("peer-wrong-token", gateway.graphql_url, wrong, gateway_id="gw-x")
    try:
        with pytest.raises(CenterRefusedCredentials) as refused:
            await connector.capacity()
        assert refused.value.code == "CENTER_UNAUTHORIZED"
        assert wrong not in str(refused.value) and wrong not in repr(connector)
    finally:
        await connector.close()


async def test_an_unreachable_peer_is_center_unavailable(tmp_path: Path) -> None:
    connector = PeerConnector("peer-nowhere", "http://127.0.0.1:9/graphql", "aicn_whatever-secret-0123456789", gateway_id="gw-x")
    try:
        with pytest.raises(CenterUnreachable) as failure:
            await connector.describe()
        assert failure.value.code == "CENTER_UNAVAILABLE"
    finally:
        await connector.close()


async def test_one_live_link_carries_every_job_and_polling_is_only_the_fallback(connector: PeerConnector) -> None:
    script = (
        "import json, time\nfor s in range(1, 4):\n    print('AICN_PROGRESS ' + json.dumps({'step': s}), flush=True)\n    time.sleep(0.3)\n"
    )
    specs = [ConnectorContract().spec([JOB_PYTHON, "-c", script]) for _ in range(2)]
    ids = [(await connector.submit(spec)).external_id for spec in specs]
    asked = 0

    async def all_done() -> bool:
        nonlocal asked
        asked += 1
        answer = await connector.status([StatusQuery(external_id) for external_id in ids])
        return all(answer[i].state is CenterJobState.SUCCEEDED and len(answer[i].progress) == 3 for i in ids)

    try:
        await eventually(all_done, "both jobs ended with their three reports", timeout=30, interval=0.05)
    except AssertionError:
        answer = await connector.status([StatusQuery(external_id) for external_id in ids])
        raise AssertionError((answer, [connector.views[i] for i in ids])) from None
    assert connector.link.connections == 1  # one connection for the peer, however many jobs
    assert asked > 10 and connector.polls <= 4, (asked, connector.polls)  # the link answered, not polls


async def test_a_model_streams_to_the_peer_once_and_its_service_is_followed_over_the_same_link(
    connector: PeerConnector, tmp_path: Path
) -> None:
    """The model's folder goes to the peer's upload route as a tar stream (the same files again find the
    model they made); the service deployed from it is followed by its serviceEvents on the jobs' link:
    its states arrive as events, with no read of the service at all."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 3))  # more than the peer's 1 MiB body limit
    (folder / "vocab.txt").write_text("\n".join(f"token{i}" for i in range(2000)))
    measured = measure_path(folder)
    download = plan(folder, "model")

    async def body() -> AsyncIterator[bytes]:
        for chunk in download.chunks():
            yield chunk

    async def send() -> str:
        return await connector.services.upload_model(
            {"name": "pushed", "version": "1"}, checksum=measured.checksum, length=download.length, body=body(), folder=True, via=("gw-o",)
        )

    model_id = await send()
    assert await send() == model_id  # sent again (a retry): the model it made, not a second one
    with pytest.raises(SubmissionRejected) as refused:
        await connector.services.upload_model(
            {"name": "pushed", "version": "2"},
            checksum=measure_path(folder / "vocab.txt").checksum,
            length=download.length,
            body=body(),
            folder=True,
            via=(),
        )
    assert "CHECKSUM_MISMATCH" in refused.value.message

    fields = {
        "modelId": model_id,
        "name": "echo",
        "request": {"maxDurationMinutes": 10, "devices": 1},
        "scale": {"min": 1, "max": 2},
        "command": [JOB_PYTHON, "-c", SERVER_SCRIPT, "ok", "{port}"],
        "idempotencyKey": "contract-service",
    }
    remote_id = await connector.services.deploy(fields, via=("gw-o",))
    woken: list[int] = []
    connector.on_service_activity = lambda: woken.append(1)
    view = await connector.follow_service(remote_id)
    reads = 0
    original = connector.services.read

    async def counted(remote: str) -> Any:
        nonlocal reads
        reads += 1
        return await original(remote)

    connector.services.read = counted  # type: ignore[method-assign]

    async def state(wanted: str, ready: int | None = None) -> bool:
        return view.state == wanted and (ready is None or view.ready == ready)

    await eventually(lambda: state("READY", 1), "READY, told by the peer's serviceEvents", timeout=60, interval=0.05)
    assert connector.following_service(remote_id) and connector.link.connections == 1
    await connector.services.scale(remote_id, {"min": 2, "max": 2})
    await eventually(lambda: state("READY", 2), "two replicas ready, told by events", timeout=60, interval=0.05)

    # the link drops; the peer scales down meanwhile; the link comes back and resumes with `after`
    await connector.link.close()
    dropped_at = view.last_seq
    await connector.services.scale(remote_id, {"min": 1, "max": 1})

    async def peer_seq() -> int:
        answer = await connector.graph.run(PEER_EVENTS, {"id": remote_id})
        return int(answer["node"]["events"]["totalCount"])

    await eventually(lambda: _above(peer_seq(), dropped_at), "the peer wrote events while the link was down", timeout=60)
    connector.link.start()
    await eventually(lambda: state("READY", 1), "the events written while the link was down, replayed", timeout=60, interval=0.05)
    assert view.last_seq > dropped_at and connector.link.connections == 2  # connected again, resumed after dropped_at

    await connector.services.stop(remote_id)
    await eventually(lambda: state("STOPPED"), "STOPPED, told by events", timeout=60, interval=0.05)
    assert view.last_seq == await peer_seq()  # every event of the peer's log, none twice (seq has no gap)
    assert reads == 0 and woken
    connector.forget_service(remote_id)


PEER_EVENTS = "query($id: ID!) { node(id: $id) { ... on InferenceService { events(first: 1) { totalCount } } } }"


async def _above(value: Any, floor: int) -> bool:
    return int(await value) > floor
