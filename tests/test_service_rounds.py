"""What the service controller costs when there is nothing to serve: no statement at all. What
could give it work wakes it instead: a service deployed here or on another replica, a request
counted after its service stopped; and a wake that is lost is made up for by its safety round."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from aicn.replica_settings import ReplicaSettings
from aicn.runtime import SERVICES
from resolvers.common.ids import from_global_id
from resolvers.services import controller as controller_module
from tests.conftest import Gateway, local_center, require_service
from tests.processes import folder_jobs_can_read
from tests.service_helpers import STOP, deploy, invoke, register_model, service_state, wait_for_service
from tests.statements import recording, task_statements
from tests.test_services_e2e import fast, server_command
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases

#: stopService, with what the stopped service tells of its ready replicas
STOP_TELLING_READY = (
    "mutation($id: ID!) { stopService(input: {serviceId: $id}) { service { state replicas { ready } } userErrors { code } } }"
)
#: how long an idle controller is watched for statements: a dozen of the rounds it used to make
IDLE_SECONDS = 3.0
CONTROLLER_TASK = "service-controller"


@pytest.fixture
def scripts() -> Any:
    """Where the serving script goes: a folder the jobs' users may read (pytest's tmp_path is private)."""
    with folder_jobs_can_read() as folder:
        yield folder


async def echo_service(gateway: Gateway, scripts: Path, tmp_path: Path, name: str = "echo") -> dict[str, Any]:
    weights = tmp_path / f"weights-{name}"
    weights.mkdir()
    model_id = await register_model(gateway.client, name=name, uri=weights.as_uri())
    return await deploy(gateway.client, modelId=model_id, name=name, command=server_command(scripts, "ok"))


async def requests_total(gateway: Gateway, service_id: str) -> int:
    return int((await service_state(gateway.client, service_id))["requestsTotal"])


async def test_an_idle_controller_costs_no_statement_and_what_gives_it_work_wakes_it(
    gateway_factory: Any, tmp_path: Path, scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "IDLE_ROUND_SECONDS", 3600.0)  # only a wake makes it look
    gateway = await gateway_factory([local_center(cores=8)], services=fast())
    controller = gateway.runtime.service_controller
    with task_statements(gateway, CONTROLLER_TASK) as statements:
        await eventually(lambda: controller.idle, "the controller found nothing to do")
        statements.clear()
        await asyncio.sleep(IDLE_SECONDS)  # the idleness under test, not a wait for a condition
        assert statements == []

        service = await echo_service(gateway, scripts, tmp_path)
        await wait_for_service(gateway.client, service["id"], {"READY"}, ready=1, timeout=30)
        assert statements  # the deploy woke it
        assert (await invoke(gateway.client, service["id"], {"x": 1}))["userErrors"] == []
        await eventually(lambda: requests_total(gateway, service["id"]), "the request counted", timeout=10)

        assert (await gateway.client.execute(STOP, {"id": service["id"]}))["stopService"]["userErrors"] == []
        await wait_for_service(gateway.client, service["id"], {"STOPPED"}, timeout=30)
        await eventually(lambda: controller.idle, "the controller idle again once the service stopped")
        statements.clear()
        await asyncio.sleep(0.5)
        assert statements == []

        # a request answered as its service stopped is counted after the controller went idle: it folds it at once
        decoded = from_global_id(service["id"])
        assert decoded is not None
        await controller.tally.count(int(decoded[1]))

        async def folded() -> bool:
            return await requests_total(gateway, service["id"]) == 2

        await eventually(folded, "the late count folded", timeout=5)


async def test_a_lost_wake_is_made_up_for_by_the_safety_round(
    gateway_factory: Any, tmp_path: Path, scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "IDLE_ROUND_SECONDS", 0.3)
    gateway = await gateway_factory([local_center(cores=8)], services=fast())
    controller = gateway.runtime.service_controller
    await eventually(lambda: controller.idle, "the controller found nothing to do")
    monkeypatch.setattr(controller, "wake", lambda: None)  # as when the wake's message never arrives
    service = await echo_service(gateway, scripts, tmp_path)
    assert (await wait_for_service(gateway.client, service["id"], {"READY"}, ready=1, timeout=30))["state"] == "READY"


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # replicas share PostgreSQL and Redis
async def test_a_service_deployed_on_another_replica_wakes_the_idle_controller_that_runs_the_services(
    gateway_factory: Any, tmp_path: Path, scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "IDLE_ROUND_SECONDS", 3600.0)
    running, other = await two_replicas(gateway_factory)
    controller = running.runtime.service_controller
    with task_statements(running, CONTROLLER_TASK) as statements:
        await eventually(lambda: controller.idle, "the controller found nothing to do")
        statements.clear()
        await asyncio.sleep(IDLE_SECONDS)
        assert statements == []
        service = await echo_service(other, scripts, tmp_path)  # deployed through the replica that does not run services
        await wait_for_service(running.client, service["id"], {"READY"}, ready=1, timeout=30)
    assert statements  # the running replica's controller, told over the bus
    assert running.runtime.leases.holds(SERVICES)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_every_replica_tells_a_ready_service_s_ready_replicas(gateway_factory: Any, tmp_path: Path, scripts: Path) -> None:
    running, other = await two_replicas(gateway_factory)
    service = await echo_service(other, scripts, tmp_path)
    await wait_for_service(running.client, service["id"], {"READY"}, ready=1, timeout=30)
    # the replica without the service's pool answers from the row, written with the state in one transaction
    assert (await service_state(other.client, service["id"]))["replicas"]["ready"] == 1

    # a round that changes nothing writes nothing: the ready count goes to the row only when it changes
    locks: list[str] = []
    updates: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith("UPDATE services "):
            updates.append(statement)
        elif "FROM services" in statement and "FOR UPDATE" in statement:
            locks.append(statement)

    with recording(running, record), recording(other, record):
        await eventually(lambda: len(locks) >= 3, "three rounds over the ready service", timeout=20)
    assert updates == []
    assert running.runtime.leases.holds(SERVICES)  # the same replica ran those rounds

    stopped = (await other.client.execute(STOP_TELLING_READY, {"id": service["id"]}))["stopService"]
    assert stopped["userErrors"] == [] and stopped["service"] == {"state": "STOPPING", "replicas": {"ready": 0}}, stopped
    for replica in (running, other):
        await wait_for_service(replica.client, service["id"], {"STOPPED"}, ready=0, timeout=30)


async def two_replicas(gateway_factory: Any) -> tuple[Gateway, Gateway]:
    """Two replicas of one gateway over PostgreSQL and Redis: (the one that runs the services, the other)."""
    require_service("127.0.0.1", 6379, "Redis")
    bus = {"bus_url": "redis://127.0.0.1:6379/0", "bus_prefix": f"aicn-test-{uuid.uuid4().hex[:12]}:"}
    replicas: list[Gateway] = [
        await gateway_factory(
            [local_center(cores=8)],
            services=fast(),
            # a lease long enough that a loaded machine's late beat does not move the services mid-test
            replicas=ReplicaSettings(name=f"replica-{n}", lease_seconds=15.0, heartbeat_seconds=0.5),
            **bus,
        )
        for n in range(2)
    ]

    def leader() -> Gateway | None:
        return next((replica for replica in replicas if replica.runtime.leases.holds(SERVICES)), None)

    running = await eventually(leader, "a replica runs the services")
    return running, next(replica for replica in replicas if replica is not running)
