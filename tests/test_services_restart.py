"""A gateway killed (SIGKILL) while a service serves: on restart the replica is found again and
answers, no second replica is started, and after the stop the replica is metered once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import DatabaseChoice
from tests.processes import folder_jobs_can_read, python_with_packages
from tests.served_gateway import ServedGateway, write_config
from tests.service_helpers import SERVER_SCRIPT, STOP, deploy, invoke, register_model, wait_for_service
from tests.waiting import eventually

USAGE = "query($id: ID!) { node(id: $id) { ... on InferenceService { usage { totalCount } } } }"
REPLICA_JOBS = "{ jobs(filter: {kinds: [INFERENCE]}) { totalCount edges { node { id state } } } }"


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    config.write_text(config.read_text() + f'\n[services]\npython = "{python_with_packages()}"\n')  # one the jobs' uids may run
    gateway = ServedGateway(config)
    try:
        yield gateway
    finally:
        gateway.kill()
        await gateway.client.close()


async def test_a_service_survives_a_gateway_restart_and_is_metered_once(served: ServedGateway, tmp_path: Path) -> None:
    await served.start()
    with folder_jobs_can_read() as scripts:
        await _serve_across_a_restart(served, tmp_path, scripts)


async def _serve_across_a_restart(served: ServedGateway, tmp_path: Path, scripts: Path) -> None:
    gql = served.client
    script = scripts / "server.py"
    script.write_text(SERVER_SCRIPT)
    model_id = await register_model(gql, name="echo", uri=tmp_path.as_uri())
    service = await deploy(gql, modelId=model_id, name="echo", command=[python_with_packages(), str(script), "ok", "{port}"])
    await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    before = await invoke(gql, service["id"], {"n": 1})
    served.kill()
    await served.start()
    gql = served.client
    await wait_for_service(gql, service["id"], {"READY"}, ready=1)
    after = await invoke(gql, service["id"], {"n": 2})
    assert after["userErrors"] == [] and after["output"]["pid"] == before["output"]["pid"]  # the same replica process
    replicas = (await gql.execute(REPLICA_JOBS))["jobs"]
    assert replicas["totalCount"] == 1, replicas
    await gql.execute(STOP, {"id": service["id"]})
    await wait_for_service(gql, service["id"], {"STOPPED"})

    async def metered() -> bool:
        return (await gql.execute(USAGE, {"id": service["id"]}))["node"]["usage"]["totalCount"] == 1

    await eventually(metered, "the replica metered once", timeout=10)
