"""Inputs staged into jobs: copied into AICN_INPUT_DIR/<name> with their checksum verified, or refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, local_center
from tests.data_helpers import STAGING_EVENTS, make_tree, register, tree_checksum
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.slurm_helpers import slurm_center

READER = """
import os, pathlib, sys
root = pathlib.Path(os.environ["AICN_INPUT_DIR"]) / "corpus"
ok = (root / "a.txt").read_text() == "alpha" and (root / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 1000
sys.exit(0 if ok else 7)
"""
FILES = {"a.txt": b"alpha", "deep/b.bin": bytes(range(256)) * 1000}


@pytest.fixture
def imports(tmp_path: Path) -> Path:
    folder = tmp_path / "imports"
    folder.mkdir()
    return folder


async def _staged_job_reads_its_input(gateway: Gateway, source: Path) -> dict[str, Any]:
    gql = gateway.client
    dataset = await register(gql, name="corpus", uri=source.as_uri())
    assert dataset["checksum"] == tree_checksum(source)[1] and int(dataset["sizeBytes"]) == 5 + 256_000
    job = await submit(gql, python_job(READER, name="reader", inputDatasetIds=[dataset["id"]]))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)
    events = [edge["node"] for edge in (await gql.execute(STAGING_EVENTS, {"id": job["id"]}))["node"]["events"]["edges"]]
    staging = [event["staging"] for event in events if event["kind"] == "STAGING"]
    assert staging and staging[-1] == {"datasetName": "corpus", "state": "VERIFIED", "bytesDone": "256005", "bytesTotal": "256005"}
    kinds = [event["kind"] for event in events]
    assert kinds.index("STAGING") < next(i for i, e in enumerate(events) if e["state"] == "RUNNING")
    return dataset


async def test_a_local_job_reads_its_staged_input(gateway_factory: Any, imports: Path) -> None:
    gateway: Gateway = await gateway_factory(data_import_roots=[imports])
    await _staged_job_reads_its_input(gateway, make_tree(imports / "corpus", FILES))


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_slurm_job_reads_its_staged_input(gateway_factory: Any, imports: Path, slurm_output_dir: str, tmp_path: Path) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir, data_root=tmp_path / "hpc")], data_import_roots=[imports])
    await _staged_job_reads_its_input(gateway, make_tree(imports / "corpus", FILES))


async def test_a_corrupt_source_fails_the_job_and_leaves_nothing(gateway_factory: Any, imports: Path) -> None:
    gateway: Gateway = await gateway_factory(data_import_roots=[imports])
    gql = gateway.client
    source = make_tree(imports / "corpus", FILES)
    dataset = await register(gql, name="corpus", uri=source.as_uri())
    (source / "a.txt").write_bytes(b"ALPHA")  # same size, other bytes: only the checksum tells
    job = await submit(gql, python_job(READER, inputDatasetIds=[dataset["id"]]))
    failed = await wait_for_state(gql, job["id"], {"FAILED"}, timeout=30)
    assert failed["failureReason"].startswith("CHECKSUM_MISMATCH: corpus:"), failed["failureReason"]
    root = gateway.runtime.registry.all()[0].data_root
    assert root is not None
    left = [path.name for path in (root / "jobs").glob("*/input/*")] + [p.name for p in (root / "jobs").glob("*/input/.*")]
    assert left == []


async def test_a_file_uri_outside_the_allowed_roots_is_refused(gql: Any) -> None:
    from tests.data_helpers import REGISTER

    answer = (await gql.execute(REGISTER, {"input": {"name": "secrets", "uri": "file:///etc/passwd"}}))["registerDataset"]
    assert [error["code"] for error in answer["userErrors"]] == ["URI_NOT_ALLOWED"]


async def test_a_wrong_checksum_is_refused_at_registration(gateway_factory: Any, imports: Path) -> None:
    from tests.data_helpers import REGISTER

    gateway: Gateway = await gateway_factory(data_import_roots=[imports])
    (imports / "one.bin").write_bytes(b"x" * 10)
    wrong = "sha256:" + hashlib.sha256(b"y").hexdigest()
    answer = await gateway.client.execute(REGISTER, {"input": {"name": "one", "uri": (imports / "one.bin").as_uri(), "checksum": wrong}})
    assert [error["code"] for error in answer["registerDataset"]["userErrors"]] == ["CHECKSUM_MISMATCH"]


async def test_an_unreadable_scheme_fails_staging_with_its_code(gateway_factory: Any) -> None:
    gateway: Gateway = await gateway_factory([local_center()])
    gql = gateway.client
    dataset = await register(gql, name="remote", uri="s3://bucket/remote")
    job = await submit(gql, python_job("pass", inputDatasetIds=[dataset["id"]]))
    failed = await wait_for_state(gql, job["id"], {"FAILED"}, timeout=30)
    assert failed["failureReason"].startswith("UNSUPPORTED_URI: remote:"), failed["failureReason"]


@pytest.fixture
def http_source(tmp_path: Path) -> Any:
    """A plain HTTP server on loopback serving ``tmp_path / "served"``."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_an_http_input_is_downloaded_verified_and_needs_a_checksum(gateway: Gateway, http_source: Any) -> None:
    folder, base = http_source
    content = b"over http\n" * 1000
    (folder / "notes.txt").write_bytes(content)
    gql = gateway.client
    checksum = "sha256:" + hashlib.sha256(content).hexdigest()
    dataset = await register(gql, name="notes", uri=f"{base}/notes.txt", checksum=checksum)
    script = f"import os, sys; sys.exit(0 if open(os.environ['AICN_INPUT_DIR'] + '/notes', 'rb').read() == {content!r} else 7)"
    job = await submit(gql, python_job(script, inputDatasetIds=[dataset["id"]]))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=30)
    unverifiable = await register(gql, name="unverifiable", uri=f"{base}/notes.txt")
    refused = await submit(gql, python_job("pass", inputDatasetIds=[unverifiable["id"]]))
    failed = await wait_for_state(gql, refused["id"], {"FAILED"}, timeout=30)
    assert failed["failureReason"].startswith("CHECKSUM_REQUIRED: unverifiable:"), failed["failureReason"]


async def test_cancelling_a_job_while_it_stages_stops_the_copy_and_leaves_nothing(gateway_factory: Any, imports: Path) -> None:
    import os

    from tests.jobs_helpers import CANCEL
    from tests.waiting import eventually

    gateway: Gateway = await gateway_factory(data_import_roots=[imports], transfer_bytes_per_second=1_000_000)
    gql = gateway.client
    dataset = await register(gql, name="slow", uri=make_tree(imports / "slow", {"x.bin": os.urandom(6_000_000)}).as_uri())
    job = await submit(gql, python_job("pass", inputDatasetIds=[dataset["id"]]))

    async def staging() -> bool:
        events = (await gql.execute(STAGING_EVENTS, {"id": job["id"]}))["node"]["events"]["edges"]
        return any(e["node"]["kind"] == "STAGING" and int(e["node"]["staging"]["bytesDone"]) > 0 for e in events)

    await eventually(staging, "the input is being copied", timeout=10, interval=0.05)
    await gql.execute(CANCEL, {"id": job["id"]})
    assert (await wait_for_state(gql, job["id"], {"CANCELLED"}))["state"] == "CANCELLED"
    root = gateway.runtime.registry.all()[0].data_root
    assert root is not None

    def nothing_left() -> bool:
        return not any(path.name for path in (root / "jobs").glob("*/input/*")) and not list((root / "jobs").glob("*/input/.*"))

    await eventually(nothing_left, "the partial copy is removed", timeout=5, interval=0.05)


@pytest.mark.ray
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_ray_job_reads_its_staged_input(gateway_factory: Any, imports: Path, tmp_path: Path) -> None:
    from tests.ray_helpers import ray_center

    gateway: Gateway = await gateway_factory([ray_center(data_root=tmp_path / "ray")], data_import_roots=[imports])
    await _staged_job_reads_its_input(gateway, make_tree(imports / "corpus", FILES))
