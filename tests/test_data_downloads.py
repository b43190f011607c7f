"""Downloads through the gateway: byte-identical, streamed, with ranges; another account's answers like a missing one."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Gateway
from tests.data_helpers import file_at, outputs_of, register, tree_checksum
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.test_auth import new_account
from tests.test_data_outputs import WRITER


async def fetch(gateway: Gateway, path: str, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        return await http.get(path, headers=headers)


def token_of(gateway: Gateway) -> str:
    token = gateway.client.token
    assert token is not None
    return token


async def test_a_model_a_job_wrote_downloads_back_byte_identical(gateway: Gateway, tmp_path: Path) -> None:
    gql = gateway.client
    job = await submit(gql, python_job(WRITER, name="writer", outputModelName="tiny"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)
    model = (await outputs_of(gql, job["id"]))["outputModel"]
    answer = await fetch(gateway, f"/models/{model['id']}/download", token_of(gateway))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-tar"
    assert int(answer.headers["content-length"]) == len(answer.content)
    with tarfile.open(fileobj=io.BytesIO(answer.content)) as archive:
        archive.extractall(tmp_path / "back", filter="data")
    assert tree_checksum(tmp_path / "back") == (int(model["sizeBytes"]), model["checksum"])
    # a range of the tar is the same bytes as that part of the whole
    part = await fetch(gateway, f"/models/{model['id']}/download", token_of(gateway), range="bytes=700-5000")
    assert part.status_code == 206 and part.content == answer.content[700:5001]
    assert part.headers["content-range"] == f"bytes 700-5000/{len(answer.content)}"


async def test_a_file_dataset_downloads_with_ranges_and_refuses_ranges_outside(gateway: Gateway) -> None:
    content = os.urandom(100_000)
    dataset = await register(gateway.client, name="blob", uri=file_at(gateway, "local", "blob.bin", content))
    path, token = f"/datasets/{dataset['id']}/download", token_of(gateway)
    whole = await fetch(gateway, path, token)
    assert whole.status_code == 200 and whole.content == content and whole.headers["accept-ranges"] == "bytes"
    tail = await fetch(gateway, path, token, range="bytes=-10")
    assert tail.status_code == 206 and tail.content == content[-10:]
    middle = await fetch(gateway, path, token, range="bytes=10-19")
    assert middle.content == content[10:20] and middle.headers["content-range"] == "bytes 10-19/100000"
    outside = await fetch(gateway, path, token, range="bytes=100000-")
    assert outside.status_code == 416 and outside.headers["content-range"] == "bytes */100000"
    assert outside.json()["errors"][0]["extensions"]["code"] == "RANGE_NOT_SATISFIABLE"


async def test_another_accounts_dataset_downloads_like_a_missing_one(gateway: Gateway) -> None:
    dataset = await register(gateway.client, name="mine", uri=file_at(gateway, "local", "mine.bin"))
    _, secret, _ = await new_account(gateway, "nosy")
    theirs = await fetch(gateway, f"/datasets/{dataset['id']}/download", secret)
    missing = await fetch(gateway, "/datasets/RGF0YXNldDo5OTk5OTk/download", secret)
    assert theirs.status_code == missing.status_code == 404 and theirs.json() == missing.json()
    anonymous = await fetch(gateway, f"/datasets/{dataset['id']}/download", None)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"


async def test_a_transfer_source_is_served_only_to_the_token_granted_for_that_transfer(gateway_factory: Any, tmp_path: Path) -> None:
    from tests.conftest import local_center
    from tests.data_helpers import make_tree, replicate

    imports = tmp_path / "imports"
    gateway: Gateway = await gateway_factory(
        [local_center("a"), local_center("b")], data_import_roots=[imports], transfer_bytes_per_second=500_000
    )
    content = os.urandom(3_000_000)
    make_tree(imports, {"big.bin": content})
    dataset = await register(gateway.client, name="big", uri=(imports / "big.bin").as_uri())
    center_b = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "b")
    transfer_id = (await replicate(gateway.client, dataset["id"], center_b))["transfer"]["id"]
    key = int(base64.b64decode(transfer_id + "==").decode().split(":")[1])
    transfers = gateway.runtime.transfers
    secret = await transfers.grant(key)
    assert secret is not None
    path = f"/transfers/{transfer_id}/source"
    served = await fetch(gateway, path, secret, range="bytes=0-999")
    assert served.status_code == 206 and served.content == content[:1000]
    for wrong in (token_of(gateway), "aicn_xfer_not-the-token", None):  # an API token is no transfer token
        assert (await fetch(gateway, path, wrong)).status_code == 404
    other = await fetch(gateway, "/transfers/VHJhbnNmZXI6OTk5/source", secret)
    assert other.status_code == 404
    from tests.data_helpers import transfer_of
    from tests.waiting import eventually

    async def verified() -> bool:
        return (await transfer_of(gateway.client, transfer_id))["state"] == "VERIFIED"

    await eventually(verified, "the copy is verified", timeout=30, interval=0.2)
    assert (await fetch(gateway, path, secret)).status_code == 404  # the grant ended with its transfer
