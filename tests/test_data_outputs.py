"""What a job writes to AICN_OUTPUT_DIR is kept by its center and registered as a model and a dataset."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.data_helpers import local_path, outputs_of, tree_checksum
from tests.jobs_helpers import python_job, submit, wait_for_state
from tests.slurm_helpers import slurm_center

WRITER = """
import os, pathlib
out = pathlib.Path(os.environ["AICN_OUTPUT_DIR"])
(out / "weights.bin").write_bytes(bytes(range(256)) * 4096)
(out / "conf").mkdir()
(out / "conf" / "config.json").write_text('{"layers": 2}')
print("wrote", out)
"""


async def _check_outputs(gateway: Gateway, center: str) -> None:
    gql = gateway.client
    job = await submit(gql, python_job(WRITER, name="writer", kind="TRAINING", outputModelName="tiny", outputDatasetName="tiny-out"))
    await wait_for_state(gql, job["id"], {"SUCCEEDED"}, timeout=60)
    found = await outputs_of(gql, job["id"])
    model, dataset = found["outputModel"], found["outputDataset"]
    folder = local_path(model["uri"])
    assert folder.name == "output" and folder.is_dir() and (folder / "weights.bin").stat().st_size == 256 * 4096
    size, checksum = tree_checksum(folder)
    assert int(model["sizeBytes"]) == size == 256 * 4096 + len('{"layers": 2}') and model["checksum"] == checksum
    assert model["trainedBy"] == {"id": job["id"]} and model["version"].startswith("job-")
    assert model["replicas"] == [{"state": "VERIFIED", "uri": model["uri"], "center": {"name": center}}]
    assert dataset["name"] == "tiny-out" and dataset["checksum"] == checksum and int(dataset["sizeBytes"]) == size
    assert dataset["producedBy"] == {"id": job["id"]}
    assert dataset["replicas"] == [{"state": "VERIFIED", "uri": dataset["uri"], "center": {"name": center}}]


async def test_a_local_job_output_becomes_a_model_and_a_dataset(gateway: Gateway) -> None:
    await _check_outputs(gateway, "local")
    root = gateway.runtime.registry.all()[0].data_root
    assert root is not None and str(root).startswith(str(gateway.runtime.settings.data_dir.absolute()))


async def test_a_failed_job_registers_nothing(gateway: Gateway) -> None:
    gql = gateway.client
    job = await submit(gql, python_job("import sys; sys.exit(3)", outputModelName="never", outputDatasetName="never"))
    await wait_for_state(gql, job["id"], {"FAILED"})
    found = await outputs_of(gql, job["id"])
    assert found["outputModel"] is None and found["outputDataset"] is None


async def test_bad_output_names_are_refused(gql: Any) -> None:
    from tests.jobs_helpers import SUBMIT

    answer = await gql.execute(SUBMIT, {"input": python_job("pass", outputDatasetName=" ")})
    assert [error["code"] for error in answer["submitJob"]["userErrors"]] == ["INVALID_NAME"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_slurm_job_output_is_kept_by_the_center(gateway_factory: Any, slurm_output_dir: str, tmp_path: Any) -> None:
    root = tmp_path / "hpc-data"
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir, data_root=root)])
    await _check_outputs(gateway, "hpc")
    assert gateway.runtime.registry.all()[0].data_root == root


@pytest.mark.ray
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_ray_job_output_is_kept_by_the_center(gateway_factory: Any, tmp_path: Any) -> None:
    from tests.ray_helpers import ray_center

    gateway: Gateway = await gateway_factory([ray_center(data_root=tmp_path / "ray-data")])
    await _check_outputs(gateway, "ray")
