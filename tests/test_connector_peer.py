"""The shared conformance suite against a PEER center: a real aicn gateway (its own process,
database and LOCAL center of 2 cores), reached with a token of an account made there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from connectors.base import CenterJobState, StatusQuery
from connectors.errors import CenterRefusedCredentials, CenterUnreachable
from connectors.peer.connector import PeerConnector
from tests.connector_contract import ConnectorContract
from tests.peer_network import NetworkGateway, account_token, start_gateway
from tests.processes import JOB_PYTHON
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
