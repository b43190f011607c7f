"""The artifact store on a real S3-compatible server (Ceph's RADOS Gateway): uploads streamed in parts and
completed only once verified, staged into jobs on LOCAL and SLURM, downloaded with ranges, replicated;
nothing half-made after a refusal or a SIGKILL; the secret nowhere to be seen."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicn.storage_settings import MIN_PART_BYTES, StorageSettings
from resolvers.common.ids import int_key
from resolvers.data.objects import ObjectStore
from tests.conftest import DatabaseChoice, Gateway, local_center
from tests.data_helpers import local_path, replicate, transfer_of
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.s3_helpers import BUCKET, empty, s3_settings, s3_toml, store_of
from tests.served_gateway import ServedGateway, write_config
from tests.slurm_helpers import slurm_center
from tests.test_data_downloads import fetch, token_of
from tests.test_data_uploads import (
    DATASET,
    DATASETS,
    READER,
    SET_QUOTA,
    STORED,
    code_of,
    send_part_of_an_upload,
    sha256,
    sha512_of,
    upload,
    upload_to,
)
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases


@pytest.fixture
def storage() -> Iterator[StorageSettings]:
    settings = s3_settings()
    yield settings
    empty(store_of(settings))


def secret_of(settings: StorageSettings) -> str:
    secret = settings.resolved_secret()
    assert secret
    return secret


def pending(store: ObjectStore) -> list[str]:
    return [upload.key for upload in store.pending_uploads()]


async def test_an_upload_to_s3_is_staged_into_a_job_downloaded_with_ranges_and_replicated(
    gateway_factory: Any, storage: StorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("b")], storage=storage)
    gql, token, store = gateway.client, token_of(gateway), store_of(storage)
    content = os.urandom(2 * MIN_PART_BYTES + 17)  # three parts, the last a short one
    answer = await upload(gateway, "/datasets/upload", content, token, name="corpus", version="2", format="bin")
    assert answer.status_code == 201, answer.text
    made = answer.json()["data"]
    assert made["uri"].startswith(f"s3://{BUCKET}/{storage.prefix}") and made["uri"].endswith("/corpus")
    assert made["sizeBytes"] == str(len(content)) and made["checksum"] == sha256(content)
    dataset = (await gql.execute(DATASET, {"id": made["id"]}))["node"]
    assert dataset == {"name": "corpus", "version": "2", "uri": made["uri"], "sizeBytes": str(len(content)), "checksum": sha256(content)}
    key = store.key_of(made["uri"])
    assert key is not None and store.keys() == [key] and pending(store) == []
    stored = store.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == content  # the object the store holds, read without the gateway
    assert (await gql.execute(STORED))["viewer"]["storedBytes"] == str(len(content))

    reader = python_job(READER, name="reader", inputDatasetIds=[made["id"]])
    reader["command"] = [*reader["command"], hashlib.sha256(content).hexdigest()]  # the job checks what it reads
    job = await submit(gql, reader)
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)

    url = f"/datasets/{made['id']}/download"
    whole = await fetch(gateway, url, token)
    assert whole.status_code == 200 and whole.content == content and whole.headers["accept-ranges"] == "bytes"
    middle = MIN_PART_BYTES - 10  # a range across the first two parts
    part = await fetch(gateway, url, token, range=f"bytes={middle}-{middle + 99}")
    assert part.status_code == 206 and part.content == content[middle : middle + 100]
    assert part.headers["content-range"] == f"bytes {middle}-{middle + 99}/{len(content)}"
    tail = await fetch(gateway, url, token, range="bytes=-17")
    assert tail.status_code == 206 and tail.content == content[-17:]
    outside = await fetch(gateway, url, token, range=f"bytes={len(content)}-")
    assert code_of(outside) == (416, "RANGE_NOT_SATISFIABLE")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:  # a client gone mid-download
        async with http.stream("GET", url, headers={"authorization": f"Bearer {token}"}) as answer:
            assert len(await anext(answer.aiter_raw())) > 0
    await eventually(lambda: not any(t.name.startswith("s3-read-") for t in threading.enumerate()), "the read-ahead thread ends")

    center_b = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "b")
    started = await replicate(gql, made["id"], center_b)
    assert started["userErrors"] == []

    async def finished() -> dict[str, Any] | None:
        transfer = await transfer_of(gql, started["transfer"]["id"])
        return transfer if transfer["state"] in ("VERIFIED", "FAILED") else None

    transfer = await eventually(finished, "the replica is verified", timeout=60)
    assert transfer["state"] == "VERIFIED" and transfer["checksum"] == sha256(content), transfer
    assert local_path(transfer["destinationUri"]).read_bytes() == content
    assert (await gql.execute(STORED))["viewer"]["storedBytes"] == str(2 * len(content))

    weights = os.urandom(300_000)  # a model, in one part
    model = await upload(gateway, "/models/upload", weights, token, sha512_of(weights), name="tiny", framework="onnx")
    assert model.status_code == 201, model.text
    back = await fetch(gateway, f"/models/{model.json()['data']['id']}/download", token)
    assert back.status_code == 200 and back.content == weights
    assert secret_of(storage) not in caplog.text


async def test_an_empty_upload_to_s3_is_an_empty_object(gateway_factory: Any, storage: StorageSettings) -> None:
    gateway: Gateway = await gateway_factory([local_center()], storage=storage)
    token = token_of(gateway)
    answer = await upload(gateway, "/datasets/upload", b"", token, name="nothing")
    assert answer.status_code == 201, answer.text
    back = await fetch(gateway, f"/datasets/{answer.json()['data']['id']}/download", token)
    assert back.status_code == 200 and back.content == b""


async def test_refused_uploads_to_s3_have_codes_and_leave_no_object(gateway_factory: Any, storage: StorageSettings) -> None:
    gateway: Gateway = await gateway_factory([local_center()], storage=storage)
    gql, token, store = gateway.client, token_of(gateway), store_of(storage)
    data = os.urandom(MIN_PART_BYTES + 1000)  # two parts: the first is in the store when the checksum is found wrong
    assert code_of(await upload(gateway, "/datasets/upload", data, token, sha256(b"other"), name="d")) == (422, "CHECKSUM_MISMATCH")
    assert store.keys() == [] and pending(store) == []

    writer = await send_part_of_an_upload(gateway.url, token, "cut", total=2 * MIN_PART_BYTES, sent=MIN_PART_BYTES + 10)
    await eventually(lambda: pending(store), "the multipart upload begins")
    writer.close()
    await writer.wait_closed()
    await eventually(lambda: pending(store) == [], "the client gone, the multipart upload is aborted")
    assert store.keys() == []

    account = (await gql.execute(STORED))["viewer"]
    quota = await gateway.admin.execute(SET_QUOTA, {"input": {"accountId": account["id"], "maxBytes": str(len(data) + 10)}})
    assert quota["setStorageQuota"]["userErrors"] == []
    assert (await upload(gateway, "/datasets/upload", data, token, name="first")).status_code == 201
    assert code_of(await upload(gateway, "/datasets/upload", data, token, name="second")) == (507, "STORAGE_QUOTA_EXCEEDED")
    assert [edge["node"]["name"] for edge in (await gql.execute(DATASETS))["datasets"]["edges"]] == ["first"]
    assert len(store.keys()) == 1 and pending(store) == []
    assert (await gql.execute(STORED))["viewer"]["storedBytes"] == str(len(data))


async def test_a_wrong_s3_secret_is_a_coded_refusal_that_never_shows_the_secret(
    gateway_factory: Any, storage: StorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-secret-" + os.urandom(8).hex()
    settings = s3_settings(prefix=storage.prefix, secret_access_key=wrong, secret_access_key_file=None)
    caplog.set_level(logging.INFO)
    gateway: Gateway = await gateway_factory([local_center()], storage=settings)
    answer = await upload(gateway, "/datasets/upload", b"some bytes", token_of(gateway), name="d")
    assert code_of(answer) == (503, "STORE_UNAVAILABLE")
    assert "SignatureDoesNotMatch" in answer.text and wrong not in answer.text
    assert wrong not in caplog.text and wrong not in repr(gateway.runtime.objects)
    assert (await gateway.client.execute(DATASETS))["datasets"]["edges"] == []
    assert store_of(storage).keys() == []


async def test_a_registered_s3_uri_is_never_read_from_the_store(gateway_factory: Any, storage: StorageSettings) -> None:
    """Another account's object named by hand: not downloaded, not staged (its key is not the caller's upload)."""
    from tests.data_helpers import register

    gateway: Gateway = await gateway_factory([local_center()], storage=storage)
    content = b"someone else's"
    made = (await upload(gateway, "/datasets/upload", content, token_of(gateway), name="theirs")).json()["data"]
    named = await register(gateway.client, name="mine", uri=made["uri"], checksum=sha256(content), sizeBytes=str(len(content)))
    answer = await fetch(gateway, f"/datasets/{named['id']}/download", token_of(gateway))
    assert code_of(answer) == (404, "NOT_FOUND")
    job = await submit(gateway.client, python_job("print(1)", inputDatasetIds=[named["id"]]))
    failed = await wait_for_state(gateway.client, job["id"], {"FAILED"}, timeout=30)
    assert failed["failureReason"].startswith("UNSUPPORTED_URI"), failed["failureReason"]


async def test_an_uploaded_object_is_a_transfer_source_for_its_granted_token(gateway_factory: Any, storage: StorageSettings) -> None:
    """A center or peer that pulls a copy itself reads the object through the gateway, with the token of that transfer."""
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("b")], storage=storage, transfer_bytes_per_second=500_000)
    content = os.urandom(3_000_000)
    made = (await upload(gateway, "/datasets/upload", content, token_of(gateway), name="big")).json()["data"]
    center_b = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "b")
    transfer_id = (await replicate(gateway.client, made["id"], center_b))["transfer"]["id"]
    key = int_key(transfer_id, "Transfer")
    assert key is not None
    secret = await gateway.runtime.transfers.grant(key)
    assert secret is not None
    path = f"/transfers/{transfer_id}/source"
    served = await fetch(gateway, path, secret, range="bytes=1000-2999")
    assert served.status_code == 206 and served.content == content[1000:3000]
    assert (await fetch(gateway, path, token_of(gateway))).status_code == 404  # an API token is no transfer token


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_slurm_job_reads_an_input_uploaded_to_s3(
    gateway_factory: Any, storage: StorageSettings, slurm_output_dir: str, tmp_path: Path
) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir, data_root=tmp_path / "hpc")], storage=storage)
    content = os.urandom(MIN_PART_BYTES + 5)
    made = (await upload(gateway, "/datasets/upload", content, token_of(gateway), name="corpus")).json()["data"]
    reader = python_job(READER, name="reader", inputDatasetIds=[made["id"]])
    reader["command"] = [*reader["command"], hashlib.sha256(content).hexdigest()]
    job = await submit(gateway.client, reader)
    await wait_for_state(gateway.client, job["id"], {"SUCCEEDED"}, timeout=120)


async def test_a_gateway_killed_mid_upload_to_s3_leaves_no_object_and_aborts_the_upload_at_start(
    database: DatabaseChoice, tmp_path: Path, storage: StorageSettings
) -> None:
    assert database.url is not None
    config = write_config(tmp_path, database.url, database.schema)
    config.write_text(config.read_text() + s3_toml(storage))
    served = ServedGateway(config)
    store = store_of(storage)
    try:
        await served.start()
        writer = await send_part_of_an_upload(served.url, served.token, "cut", total=3 * MIN_PART_BYTES, sent=2 * MIN_PART_BYTES)

        def parts_sent() -> bool:
            uploads = store.pending_uploads()
            return bool(uploads) and bool(
                store.client.list_parts(Bucket=BUCKET, Key=uploads[0].key, UploadId=uploads[0].upload_id).get("Parts")
            )

        await eventually(parts_sent, "a part of the upload is in the store")
        served.kill()  # SIGKILL: no cleanup ran
        writer.close()
        assert store.keys() == [] and len(pending(store)) == 1  # nothing visible; the unfinished upload is there
        await served.start()
        assert pending(store) == []  # aborted at start
        assert (await served.client.execute(DATASETS))["datasets"]["edges"] == []
        done = await upload_to(served.url, served.token, b"whole", name="cut")  # the name is free: nothing was recorded
        assert done.status_code == 201, done.text
        assert len(store.keys()) == 1
    finally:
        served.kill()
        await served.client.close()
    assert secret_of(storage) not in served.log.read_text(errors="replace")
