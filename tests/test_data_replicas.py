"""Replicas made by verified transfers: tracked, used by DATA_LOCAL, recovered after the gateway is killed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DatabaseChoice, Gateway, local_center
from tests.data_helpers import file_at as file_at_root
from tests.data_helpers import local_path, make_tree, register, replicate, transfer_of, tree_checksum
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.served_gateway import ServedGateway, write_config
from tests.test_auth import new_account
from tests.waiting import eventually

READER = """
import os, pathlib, sys
sys.exit(0 if (pathlib.Path(os.environ["AICN_INPUT_DIR"]) / "corpus" / "a.txt").read_text() == "alpha" else 7)
"""
PLACED = "query($id: ID!) { node(id: $id) { ... on Job { center { name } } } }"
REPLICAS = "query($id: ID!) { node(id: $id) { ... on Dataset { replicas { state center { name } } } } }"


def center_id(gateway: Gateway, name: str) -> str:
    return next(center.global_id for center in gateway.runtime.registry.all() if center.name == name)


async def verified(gql: Any, transfer_id: str, timeout: float = 20) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        found = await transfer_of(gql, transfer_id)
        assert found["state"] != "FAILED", found
        return found if found["state"] == "VERIFIED" else None

    return await eventually(done, "the transfer is verified", timeout=timeout, interval=0.1)


async def test_a_replica_is_copied_verified_and_used_by_data_local(gateway_factory: Any, tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    gateway: Gateway = await gateway_factory(
        [local_center("cheap", price="0.50"), local_center("far", price="0.80")], data_import_roots=[imports]
    )
    gql = gateway.client
    source = make_tree(imports / "corpus", {"a.txt": b"alpha", "b/c.bin": os.urandom(300_000)})
    dataset = await register(gql, name="corpus", uri=source.as_uri())
    started = await replicate(gql, dataset["id"], center_id(gateway, "far"))
    assert started["userErrors"] == [] and started["transfer"]["bytesTotal"] == str(300_005)
    done = await verified(gql, started["transfer"]["id"])
    assert done["bytesDone"] == done["bytesTotal"] == "300005" and done["checksum"] == dataset["checksum"]
    assert tree_checksum(local_path(done["destinationUri"])) == (300_005, dataset["checksum"])
    replicas = (await gql.execute(REPLICAS, {"id": dataset["id"]}))["node"]["replicas"]
    assert replicas == [{"state": "VERIFIED", "center": {"name": "far"}}]

    again = await replicate(gql, dataset["id"], center_id(gateway, "far"))
    assert [error["code"] for error in again["userErrors"]] == ["ALREADY_REPLICATED"]

    # DATA_LOCAL: the verified copy outweighs the cheaper center (no transfer price set: data first)
    job = await submit(gql, python_job(READER, policy="DATA_LOCAL", inputDatasetIds=[dataset["id"]]))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=30)
    assert (await gql.execute(PLACED, {"id": job["id"]}))["node"]["center"] == {"name": "far"}
    # and CHEAPEST stages a copy into the cheap center instead
    cheap = await submit(gql, python_job(READER, inputDatasetIds=[dataset["id"]]))
    await wait_for_state(gql, cheap["id"], {"SUCCEEDED"}, timeout=30)
    assert (await gql.execute(PLACED, {"id": cheap["id"]}))["node"]["center"] == {"name": "cheap"}


async def test_another_accounts_dataset_cannot_be_replicated(gateway_factory: Any, tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("b")], data_import_roots=[imports])
    (imports).mkdir()
    (imports / "one.txt").write_text("one")
    dataset = await register(gateway.client, name="one", uri=(imports / "one.txt").as_uri())
    _, _, stranger = await new_account(gateway, "stranger")
    theirs = await replicate(stranger, dataset["id"], center_id(gateway, "b"))
    missing = await replicate(stranger, "RGF0YXNldDo5OTk5OTk=", center_id(gateway, "b"))
    assert theirs == missing and [error["code"] for error in theirs["userErrors"]] == ["DATASET_NOT_FOUND"]
    nowhere = await replicate(gateway.client, dataset["id"], "Q29tcHV0ZUNlbnRlcjo5OTk5")
    assert [error["code"] for error in nowhere["userErrors"]] == ["CENTER_NOT_FOUND"]


async def test_a_dataset_larger_than_the_free_space_is_refused_before_copying(gateway_factory: Any, tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("small", storage_bytes=1000)], data_import_roots=[imports])
    make_tree(imports / "big", {"x.bin": b"x" * 5000})
    dataset = await register(gateway.client, name="big", uri=(imports / "big").as_uri())
    refused = await replicate(gateway.client, dataset["id"], center_id(gateway, "small"))
    assert refused["transfer"] is None and [error["code"] for error in refused["userErrors"]] == ["INSUFFICIENT_STORAGE"]


@pytest.fixture
async def served(database: DatabaseChoice, tmp_path: Path) -> AsyncIterator[ServedGateway]:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    imports = tmp_path / "imports"
    extra = [f'data_import_roots = ["{imports}"]', "transfer_bytes_per_second = 4000000"]
    config.write_text("\n".join(extra) + "\n" + config.read_text())
    gateway = ServedGateway(config)
    try:
        yield gateway
    finally:
        gateway.kill()
        await gateway.client.close()


async def test_a_transfer_killed_mid_way_is_copied_again_and_never_left_half_verified(served: ServedGateway, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "imports" / "corpus", {"part1.bin": os.urandom(6_000_000), "part2.bin": os.urandom(2_000_000)})
    await served.start()
    gql = served.client
    dataset = await register(gql, name="corpus", uri=source.as_uri())
    center = (await gql.execute("{ centers { edges { node { id } } } }"))["centers"]["edges"][0]["node"]["id"]
    started = await replicate(gql, dataset["id"], center)
    transfer_id = started["transfer"]["id"]

    async def copying() -> bool:
        found = await transfer_of(gql, transfer_id)
        return found["state"] == "COPYING" and 0 < int(found["bytesDone"]) < 8_000_000

    await eventually(copying, "the copy is under way", timeout=20, interval=0.05)
    served.kill()
    await served.start()
    found = await verified(gql, transfer_id, timeout=30)
    assert found["attempts"] == 2
    folder = local_path(found["destinationUri"])
    assert tree_checksum(folder) == (8_000_000, dataset["checksum"])
    assert [path.name for path in folder.parent.iterdir()] == [folder.name]  # no partial copy left beside it
    replicas = (await gql.execute(REPLICAS, {"id": dataset["id"]}))["node"]["replicas"]
    assert replicas == [{"state": "VERIFIED", "center": {"name": "local"}}]


async def test_data_local_weighs_moving_the_data_against_the_price_when_moving_is_priced(gateway_factory: Any, tmp_path: Path) -> None:
    """A 1 MB input held only at the dear center: moving it costs 0.000001 GB x price; cheap wins when that is less
    than the price difference, dear wins when moving costs more."""
    imports = tmp_path / "imports"
    centers = [local_center("cheap", price="0.50"), local_center("dear", price="0.80")]
    for price, expected in (("0.01", "cheap"), ("1000000", "dear")):
        gateway: Gateway = await gateway_factory(centers, data_import_roots=[imports], transfer_price_per_gb=price)
        gql = gateway.client
        uri = file_at_root(gateway, "dear", f"held-{expected}.bin", b"m" * 1_000_000)
        dear = center_id(gateway, "dear")
        dataset = await register(gql, name=f"held-{expected}", uri=uri, replicas=[{"centerId": dear, "uri": uri}])
        job = await submit(gql, python_job("pass", policy="DATA_LOCAL", inputDatasetIds=[dataset["id"]]))
        assert job["center"]["name"] == expected, (price, job)
        await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=30)
        await gateway.stop()


async def test_a_destination_going_down_mid_copy_fails_the_transfer_and_leaves_no_replica(gateway_factory: Any, tmp_path: Path) -> None:
    from connectors.fault import FaultyConnector

    imports = tmp_path / "imports"
    flaky = FaultyConnector("flaky")
    gateway: Gateway = await gateway_factory(
        [local_center("src"), local_center("flaky", failure_threshold=1, probe_interval_seconds=0.1)],
        {"flaky": flaky},
        data_import_roots=[imports],
        transfer_bytes_per_second=1_000_000,
    )
    gql = gateway.client
    make_tree(imports / "slow", {"x.bin": os.urandom(5_000_000)})
    dataset = await register(gql, name="slow", uri=(imports / "slow").as_uri())
    started = await replicate(gql, dataset["id"], center_id(gateway, "flaky"))
    transfer_id = started["transfer"]["id"]

    async def copying() -> bool:
        return int((await transfer_of(gql, transfer_id))["bytesDone"]) > 0

    await eventually(copying, "the copy is under way", timeout=10, interval=0.05)
    assert (await gql.execute(REPLICAS, {"id": dataset["id"]}))["node"]["replicas"] == [{"state": "COPYING", "center": {"name": "flaky"}}]
    flaky.set("refuse")

    async def failed() -> dict[str, Any] | None:
        found = await transfer_of(gql, transfer_id)
        return found if found["state"] == "FAILED" else None

    found = await eventually(failed, "the transfer failed", timeout=15, interval=0.1)
    assert found["failureCode"] == "CENTER_UNAVAILABLE"
    assert (await gql.execute(REPLICAS, {"id": dataset["id"]}))["node"]["replicas"] == []
    folder = local_path(found["destinationUri"]).parent
    assert list(folder.iterdir()) == []  # neither the copy nor its partial
