"""Uploads into the gateway's artifact store: checked, limited, never half-visible; staged and downloaded like any dataset."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from resolvers.common.ids import to_global_id
from store import transfers as transfer_store
from tests.conftest import DatabaseChoice, Gateway, local_center
from tests.data_helpers import REPLICATE, TRANSFER, local_path, tree_checksum
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.served_gateway import ServedGateway, write_config
from tests.test_auth import new_account
from tests.test_data_downloads import fetch, token_of
from tests.test_data_storage import BILL
from tests.waiting import eventually

pytestmark = pytest.mark.both_databases

DATASET = """query($id: ID!) { node(id: $id) { ... on Dataset { name version uri sizeBytes checksum } } }"""
MODEL = """query($id: ID!) { node(id: $id) { ... on Model { name version framework sizeBytes checksum } } }"""
DATASETS = "{ datasets { edges { node { name } } } }"
STORED = "{ viewer { id storedBytes } }"
SET_QUOTA = """mutation($input: SetStorageQuotaInput!) { setStorageQuota(input: $input) { userErrors { code } } }"""
READER = """
import hashlib, os, pathlib, sys
data = (pathlib.Path(os.environ["AICN_INPUT_DIR"]) / "corpus").read_bytes()
sys.exit(0 if hashlib.sha256(data).hexdigest() == sys.argv[1] else 7)
"""


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def upload(gateway: Gateway, path: str, data: bytes, token: str | None, checksum: str | None = None, **query: str) -> httpx.Response:
    return await upload_to(gateway.url, token, data, path, checksum, **query)


async def upload_to(
    url: str, token: str | None, data: bytes, path: str = "/datasets/upload", checksum: str | None = None, **query: str
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers["x-checksum"] = checksum or sha256(data)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.post(path, params=query, content=data, headers=headers)


def code_of(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["errors"][0]["extensions"]["code"]


def artifact_files(gateway: Gateway) -> list[Path]:
    root = gateway.runtime.uploads.root
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


async def test_an_uploaded_dataset_is_staged_into_a_job_and_downloads_back(gateway: Gateway) -> None:
    gql, token = gateway.client, token_of(gateway)
    content = os.urandom(3 * 1024 * 1024 + 17)  # more than one write's worth
    answer = await upload(gateway, "/datasets/upload", content, token, name="corpus", version="2", format="bin")
    assert answer.status_code == 201, answer.text
    made = answer.json()["data"]
    assert made["sizeBytes"] == str(len(content)) and made["checksum"] == sha256(content)
    dataset = (await gql.execute(DATASET, {"id": made["id"]}))["node"]
    assert dataset == {"name": "corpus", "version": "2", "uri": made["uri"], "sizeBytes": str(len(content)), "checksum": sha256(content)}
    stored = local_path(made["uri"])
    assert stored.read_bytes() == content and stored.is_relative_to(gateway.runtime.uploads.root)
    assert [path.name for path in artifact_files(gateway)] == ["corpus"]  # no partial left beside it
    assert (await gql.execute(STORED))["viewer"]["storedBytes"] == str(len(content))

    reader = python_job(READER, name="reader", inputDatasetIds=[made["id"]])
    reader["command"] = [*reader["command"], hashlib.sha256(content).hexdigest()]  # the job checks what it reads
    job = await submit(gql, reader)
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)

    whole = await fetch(gateway, f"/datasets/{made['id']}/download", token)
    assert whole.status_code == 200 and whole.content == content
    part = await fetch(gateway, f"/datasets/{made['id']}/download", token, range="bytes=100-199")
    assert part.status_code == 206 and part.content == content[100:200]


async def test_an_uploaded_model_is_recorded_and_downloads_byte_identical(gateway: Gateway) -> None:
    token = token_of(gateway)
    weights = os.urandom(200_000)
    answer = await upload(gateway, "/models/upload", weights, token, sha512_of(weights), name="tiny", framework="onnx")
    assert answer.status_code == 201, answer.text
    made = answer.json()["data"]
    model = (await gateway.client.execute(MODEL, {"id": made["id"]}))["node"]
    assert model == {"name": "tiny", "version": "1", "framework": "onnx", "sizeBytes": "200000", "checksum": sha512_of(weights)}
    back = await fetch(gateway, f"/models/{made['id']}/download", token)
    assert back.status_code == 200 and back.content == weights
    again = await upload(gateway, "/models/upload", weights, token, sha512_of(weights), name="tiny")
    assert again.status_code == 200 and again.json()["data"]["id"] == made["id"]  # a retried upload finds what it made
    other = os.urandom(1000)
    assert code_of(await upload(gateway, "/models/upload", other, token, sha512_of(other), name="tiny")) == (409, "ALREADY_EXISTS")


async def test_a_folder_uploaded_as_a_tar_becomes_one_model_with_the_folders_checksum(gateway: Gateway, tmp_path: Path) -> None:
    token = token_of(gateway)
    folder = tmp_path / "bert"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(os.urandom(1_500_000))
    (folder / "tokenizer" / "vocab.txt").write_text("\n".join(f"word{i}" for i in range(5000)))
    size, checksum = tree_checksum(folder)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(folder, arcname=".")
    body = archive.getvalue()
    headers = {"authorization": f"Bearer {token}", "x-checksum": checksum, "content-type": "application/x-tar"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        answer = await http.post("/models/upload", params={"name": "bert", "framework": "onnx"}, content=body, headers=headers)
        assert answer.status_code == 201, answer.text
        made = answer.json()["data"]
        assert made["checksum"] == checksum and made["sizeBytes"] == str(size)
        assert tree_checksum(local_path(made["uri"])) == (size, checksum)
        again = await http.post("/models/upload", params={"name": "bert"}, content=body, headers=headers)
        assert again.status_code == 200 and again.json()["data"]["id"] == made["id"]
        wrong = {**headers, "x-checksum": tree_checksum(folder / "tokenizer")[1]}
        refused = await http.post("/models/upload", params={"name": "bert", "version": "2"}, content=body, headers=wrong)
        assert code_of(refused) == (422, "CHECKSUM_MISMATCH")
        escaping = io.BytesIO()
        with tarfile.open(fileobj=escaping, mode="w") as tar:
            tar.add(folder / "model.onnx", arcname="../outside.onnx")
        bad = await http.post("/models/upload", params={"name": "evil"}, content=escaping.getvalue(), headers=headers)
        assert code_of(bad) == (422, "INVALID_ARCHIVE")
    assert [path.name for path in artifact_files(gateway) if "evil" in str(path) or ".partial" in str(path)] == []


def sha512_of(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def test_refused_uploads_have_codes_and_leave_nothing(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center()], upload_max_bytes=10_000)
    gql, token = gateway.client, token_of(gateway)
    data = b"x" * 5000
    assert code_of(await upload(gateway, "/datasets/upload", data, token, sha256(b"other"), name="d")) == (422, "CHECKSUM_MISMATCH")
    assert code_of(await upload(gateway, "/datasets/upload", data, token, "sha256:nope", name="d")) == (400, "INVALID_CHECKSUM")
    assert code_of(await upload(gateway, "/datasets/upload", b"y" * 10_001, token, name="d")) == (413, "UPLOAD_TOO_LARGE")
    assert code_of(await upload(gateway, "/datasets/upload", data, token, name="")) == (400, "INVALID_NAME")
    assert code_of(await upload(gateway, "/datasets/upload", data, None, name="d")) == (401, "UNAUTHENTICATED")
    _, reader_token, _ = await new_account(gateway, "reader", scopes=["READ"])
    assert code_of(await upload(gateway, "/datasets/upload", data, reader_token, name="d")) == (401, "UNAUTHENTICATED")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        bare = await http.post("/datasets/upload", params={"name": "d"}, content=data, headers={"authorization": f"Bearer {token}"})
    assert code_of(bare) == (400, "CHECKSUM_REQUIRED")

    account = (await gql.execute(STORED))["viewer"]
    quota = await gateway.admin.execute(SET_QUOTA, {"input": {"accountId": account["id"], "maxBytes": "6000"}})
    assert quota["setStorageQuota"]["userErrors"] == []
    assert (await upload(gateway, "/datasets/upload", data, token, name="first")).status_code == 201
    assert code_of(await upload(gateway, "/datasets/upload", data, token, name="second")) == (507, "STORAGE_QUOTA_EXCEEDED")
    assert [edge["node"]["name"] for edge in (await gql.execute(DATASETS))["datasets"]["edges"]] == ["first"]
    assert [path.name for path in artifact_files(gateway)] == ["first"]


async def send_part_of_an_upload(url: str, token: str, name: str) -> asyncio.StreamWriter:
    """Start an upload of 100,000 bytes and send 30,000 of them; the connection stays open."""
    host, port = url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /datasets/upload?name={name} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        f"x-checksum: {sha256(b'z' * 100_000)}\r\ncontent-length: 100000\r\n\r\n"
    )
    writer.write(head.encode() + b"z" * 30_000)
    await writer.drain()
    return writer


def partials_under(root: Path) -> list[Path]:
    return [path for path in root.rglob(".partial-*")] if root.exists() else []


async def test_a_client_gone_mid_upload_leaves_nothing(gateway: Gateway) -> None:
    writer = await send_part_of_an_upload(gateway.url, token_of(gateway), "cut")
    await eventually(lambda: partials_under(gateway.runtime.uploads.root), "the partial file appears")
    writer.close()
    await writer.wait_closed()
    await eventually(lambda: artifact_files(gateway) == [], "the partial file is removed")
    assert (await gateway.client.execute(DATASETS))["datasets"]["edges"] == []
    assert (await gateway.client.execute(STORED))["viewer"]["storedBytes"] == "0"


async def test_a_gateway_killed_mid_upload_records_nothing_and_sweeps_the_partial_at_start(
    database: DatabaseChoice, tmp_path: Path
) -> None:
    assert database.url is not None
    served = ServedGateway(write_config(tmp_path, database.url, database.schema))
    try:
        await served.start()
        await _killed_mid_upload(served, tmp_path / "data" / "artifacts")
    finally:
        served.kill()
        await served.client.close()


async def _killed_mid_upload(served: ServedGateway, artifacts: Path) -> None:
    writer = await send_part_of_an_upload(served.url, served.token, "cut")
    await eventually(lambda: partials_under(artifacts), "the partial file appears")
    served.kill()  # SIGKILL: no cleanup ran
    writer.close()
    assert partials_under(artifacts) != []
    await served.start()
    assert partials_under(artifacts) == []
    assert (await served.client.execute(DATASETS))["datasets"]["edges"] == []
    done = await upload_to(served.url, served.token, b"whole", name="cut")  # the name is free: nothing was recorded
    assert done.status_code == 201, done.text


async def test_an_upload_is_replicated_to_a_center_and_metered_as_stored(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center("a"), local_center("b")], storage_price_per_gb_month=Decimal("1000000"))
    gql, token = gateway.client, token_of(gateway)
    content = os.urandom(50_000)
    made = (await upload(gateway, "/datasets/upload", content, token, name="corpus")).json()["data"]
    center_b = next(center.global_id for center in gateway.runtime.registry.all() if center.name == "b")
    started = (await gql.execute(REPLICATE, {"input": {"datasetId": made["id"], "centerId": center_b}}))["replicateDataset"]
    assert started["userErrors"] == []

    async def verified() -> dict[str, Any] | None:
        transfer = (await gql.execute(TRANSFER, {"id": started["transfer"]["id"]}))["node"]
        return transfer if transfer["state"] in ("VERIFIED", "FAILED") else None

    transfer = await eventually(verified, "the replica is verified", timeout=30)
    assert transfer["state"] == "VERIFIED" and transfer["checksum"] == sha256(content)
    assert local_path(transfer["destinationUri"]).read_bytes() == content
    # the artifact store's copy and the replica both count
    assert (await gql.execute(STORED))["viewer"]["storedBytes"] == str(2 * len(content))

    billing, runtime = gateway.runtime.billing, gateway.runtime
    period = billing.book.policy.calendar.period_of(billing.clock())
    billing.clock = lambda: period.end + timedelta(days=1)  # the month is over
    assert runtime.default_viewer is not None
    async with runtime.db.read() as session:
        copies = await transfer_store.verified_copies(session, runtime.default_viewer.account_id)
    assert sorted(size for size, _ in copies) == [len(content), len(content)]
    bill = await billing.finalize_period(runtime.settings.account_name, period.label)
    lines = [edge["node"] for edge in (await gql.execute(BILL, {"id": to_global_id("Bill", bill.id)}))["node"]["lines"]["edges"]]
    assert [Decimal(line["amount"]["amount"]) > 0 for line in lines if line["kind"] == "STORAGE"] == [True]
