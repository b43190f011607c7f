"""Webhooks survive a SIGKILLed gateway (a real `aicn serve` process): the outbox is in the
database, written with the job's end, and a delivery cut off mid-attempt is sent again under
the same delivery id, so the receiver (a real process) sees each job's end exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DatabaseChoice
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.processes import folder_jobs_can_read
from tests.served_gateway import ServedGateway, write_config
from tests.waiting import eventually
from tests.webhook_helpers import WebhookReceiver, create_endpoint, deliveries

pytestmark = pytest.mark.both_databases  # the outbox and its leases are the database's transactions

WEBHOOKS = """
[webhooks]
allowed_networks = ["127.0.0.0/8"]
allow_http_on_loopback = true
retry_base_seconds = 0.2
retry_max_seconds = 1.0
timeout_seconds = 5.0
poll_interval_seconds = 3600  # no safety-net round: the restarted gateway finds what is due, and waits for the lease it left to run out
"""


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    config.write_text(config.read_text() + WEBHOOKS)
    gateway = ServedGateway(config)
    try:
        yield gateway
    finally:
        gateway.kill()
        await gateway.client.close()


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[WebhookReceiver]:
    process = WebhookReceiver(tmp_path / "receiver")
    await process.start()
    try:
        yield process
    finally:
        process.stop()


def waits_for(go: Path) -> str:
    return f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.05)"


@pytest.fixture
def go() -> Iterator[Path]:
    """The file that lets a waiting job end, where the job's own user can see it."""
    with folder_jobs_can_read() as folder:
        yield folder / "go"


async def test_each_job_end_reaches_the_receiver_exactly_once_across_a_sigkill(
    served: ServedGateway, receiver: WebhookReceiver, go: Path
) -> None:
    await served.start()
    created = await create_endpoint(served.client, receiver.url("/hang-first"), ["JOB_ENDED"])
    assert created["userErrors"] == [], created
    receiver.trust("/hang-first", created["secret"])

    first = await submit(served.client, python_job("pass", name="before-the-kill"))
    await eventually(receiver.received, "the first delivery reached the receiver (which does not answer it)", timeout=20)
    second = await submit(served.client, python_job(waits_for(go), name="ends-while-dead"))
    await wait_for_state(served.client, second["id"], {"RUNNING"})

    served.kill()  # the first delivery's attempt is cut off; the second job has not ended yet
    go.touch()
    await served.start()
    third = await submit(served.client, python_job("pass", name="after-the-restart"))
    jobs = {first["id"], second["id"], third["id"]}

    async def all_delivered() -> list[dict[str, Any]]:
        found = await deliveries(served.client, created["endpoint"]["id"])
        return found if len(found) == 3 and all(delivery["state"] == "DELIVERED" for delivery in found) else []

    recorded = await eventually(all_delivered, "the graph shows three DELIVERED deliveries", timeout=45, interval=0.1)
    ends: dict[str, set[str]] = {}  # job -> the delivery ids its end arrived under (a receiver drops repeats by delivery id)
    for arrival in receiver.received():
        ends.setdefault(arrival["data"]["jobId"], set()).add(arrival["deliveryId"])
    assert set(ends) == jobs and all(len(ids) == 1 for ids in ends.values()), ends  # one event per job, one delivery id each
    assert {delivery["deliveryId"] for delivery in recorded} == {next(iter(ids)) for ids in ends.values()}
    arrivals = receiver.received()
    assert all(arrival["valid"] and arrival["type"] == "JOB_ENDED" for arrival in arrivals)
    [cut_off] = ends[first["id"]]
    assert [arrival["attempt"] for arrival in arrivals if arrival["deliveryId"] == cut_off] == [1, 2]  # sent again after the restart
    # the attempt the kill cut off left no record (it did not time out first): the one recorded is the resend
    [resent] = [delivery for delivery in recorded if delivery["deliveryId"] == cut_off]
    assert resent["attempts"] == [{"number": 1, "statusCode": 200, "error": None}]
    assert len(arrivals) == 4  # three ends, one of them twice: the receiver's de-duplication is what makes it once
    await wait_for_state(served.client, third["id"], {"SUCCEEDED"})
