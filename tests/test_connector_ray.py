"""The RAY connector against the real Ray head (scripts/start-ray.sh), plus what only RAY does.

Without a head the live tests are skipped on a developer machine and fail in CI (``CI=true``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from aicn.runtime import build_connector
from aicn.settings import CenterConfig, RayConfig, Settings
from connectors.base import CenterJobState, JobSpec, StatusQuery
from connectors.errors import CenterUnreachable, JobNotFound, SubmissionRejected
from connectors.ray import api, serve
from connectors.ray.connector import RayConnector
from connectors.ray.progress import MAX_PROGRESS_LINE, LogCursor
from connectors.ray.replicas import MODEL_DIR, SERVICE_KEY
from connectors.ray.serve import ServeOptions
from connectors.serving import ONNX_SERVER
from tests.connector_contract import PYTHON, ConnectorContract, wait_for
from tests.leftovers import RemembersSubmissions
from tests.ray_helpers import NPU, RAY_URL, RESOURCE_MODELS, require_ray
from tests.service_helpers import TRAIN_SCRIPT


class _CleaningRayConnector(RemembersSubmissions, RayConnector):
    """Remembers what it submitted, so a failing test leaves nothing running on the shared center."""


async def _cleaning(ray: _CleaningRayConnector) -> AsyncIterator[RayConnector]:
    ray.submitted = []
    await ray.start()
    try:
        yield ray
    finally:
        try:
            await ray.cancel_leftovers()
        finally:
            await ray.close()


@pytest.fixture
async def connector() -> AsyncIterator[RayConnector]:
    require_ray()
    # alone, without a gateway's reconciler to stop jobs at their limits: the node-side guard does, at once
    async for ray in _cleaning(_CleaningRayConnector("ray-test", RAY_URL, resource_models=RESOURCE_MODELS, backstop_seconds=0)):
        yield ray


@pytest.mark.ray
class TestRayContract(ConnectorContract):
    settle_seconds = 45.0
    time_limit_seconds = 2.0
    time_limit_wait_seconds = 30.0
    #: Ray 2.60's head relays the log tail through aiohttp with its default 4 MiB message limit
    #: and drops a longer frame (one line is one frame): the connector's own bound is 32 MiB
    enormous_line_bytes = 3 * 1024 * 1024


@pytest.mark.ray
async def test_custom_resources_are_catalog_devices(connector: RayConnector) -> None:
    capacity = {entry.accelerator: entry for entry in await connector.capacity()}
    assert capacity[NPU].devices_total == 2
    assert capacity["cpu-core"].devices_total == 2
    script = "import os; print('npu job', os.environ['AICN_JOB_REFERENCE'])"
    spec = ConnectorContract().spec([PYTHON, "-c", script], accelerator=NPU, devices=2)
    submission = await connector.submit(spec)
    final = await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED, CenterJobState.FAILED], 45)
    assert final.state is CenterJobState.SUCCEEDED
    assert f"npu job {spec.reference}" in await connector.logs(submission.external_id)


@pytest.mark.ray
async def test_the_argv_is_never_resplit(connector: RayConnector) -> None:
    tricky = "a b; echo INJECTED $HOME 'q' \"d\""
    submission = await connector.submit(ConnectorContract().spec([PYTHON, "-c", "import sys; print(repr(sys.argv[1]))", tricky]))
    await wait_for(connector, submission.external_id, [CenterJobState.SUCCEEDED], 45)
    output = await connector.logs(submission.external_id, tail_lines=5)
    assert output.strip() == repr(tricky)


async def test_an_unreachable_head_is_center_unavailable() -> None:
    ray = RayConnector("ray-gone", "http://127.0.0.1:9", token="secret-token-0123456789abcdef0123")
    await ray.start()
    try:
        with pytest.raises(CenterUnreachable) as caught:
            await ray.capacity()
        assert caught.value.center == "ray-gone"
        assert "secret-token" not in str(caught.value) and "secret-token" not in repr(ray)
    finally:
        await ray.close()


def test_the_entrypoint_quotes_each_word_and_runs_under_timeout() -> None:
    line = api.entrypoint(["python", "-c", "print('x y')", "$(rm -rf /)"], 90.5)
    assert shlex.split(line) == ["timeout", "--kill-after=10", "90.5s", "python", "-c", "print('x y')", "$(rm -rf /)"]
    # the gateway stops a job at its limit; the node-side guard is the backstop, a minute later
    request = api.JobRequest("ref", ["python"], 90.5, {}, {}, api.Resources())
    assert shlex.split(api.submit_body(request)["entrypoint"])[:3] == ["timeout", "--kill-after=10", "150.5s"]


def test_the_log_cursor_parses_each_line_once_as_it_streams_in() -> None:
    cursor = LogCursor()
    cursor.feed('AICN_PROGRESS {"fraction": 0.5}\nAICN_PROGRESS {"fract')
    assert [report.ordinal for report in cursor.after(0)] == [1]
    cursor.feed('ion": 1.0}\nother\n' + "y" * (MAX_PROGRESS_LINE + 10))
    cursor.feed('AICN_PROGRESS {"fraction": 0.1}\n')  # the end of an overlong line: not a report
    cursor.feed('AICN_PROGRESS {"fraction": 0.25}\n')
    assert [(report.ordinal, report.fraction) for report in cursor.after(0)] == [(1, 0.5), (2, 1.0), (3, 0.25)]
    assert [report.ordinal for report in cursor.after(1)] == [2, 3]


def test_states_and_time_limits_of_job_records() -> None:
    base = {"submission_id": "x", "start_time": 1_000_000, "metadata": {api.META_LIMIT: "60"}, "message": "m"}
    timed_out = api.parse_job({**base, "status": "FAILED", "driver_exit_code": 124, "end_time": 1_061_000})
    assert timed_out.state is CenterJobState.FAILED and (api.failure_reason(timed_out) or "").startswith("TIME_LIMIT")
    own_124 = api.parse_job({**base, "status": "FAILED", "driver_exit_code": 124, "end_time": 1_002_000})
    assert not (api.failure_reason(own_124) or "").startswith("TIME_LIMIT")
    assert api.parse_job({**base, "status": "STOPPED"}).state is CenterJobState.CANCELLED
    assert api.parse_job({**base, "status": "PENDING"}).state is CenterJobState.QUEUED
    assert api.dashboard_key("accelerator_type:A100") == "acceleratorType:A100"


def test_a_program_that_cannot_start_is_explained_from_its_log_when_rays_message_lacks_it() -> None:
    base = {"submission_id": "x", "status": "FAILED", "driver_exit_code": 127}
    told = "Job entrypoint command failed with exit code 127, last available logs (truncated to 20,000 chars):\n"
    timeout_said = "timeout: failed to run command \u2018/no/such/program\u2019: No such file or directory\n"
    in_message = api.parse_job({**base, "message": told + timeout_said})
    assert not api.cannot_start_unexplained(in_message)
    assert api.failure_reason(in_message) == "COMMAND_NOT_FOUND: cannot start '/no/such/program': No such file or directory"
    flushed_late = api.parse_job({**base, "message": told, "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR"})
    assert api.cannot_start_unexplained(flushed_late)
    assert (api.failure_reason(flushed_late) or "").startswith("JOB_ENTRYPOINT_COMMAND_ERROR: ")
    assert api.failure_reason(flushed_late, timeout_said) == api.failure_reason(in_message)
    assert not api.cannot_start_unexplained(api.parse_job({**base, "driver_exit_code": 1, "message": told}))


def test_a_ray_center_config_builds_a_connector_and_hides_its_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-0123456789abcdef0123456789\n")
    config = CenterConfig(name="ray", kind="RAY", ray=RayConfig(token_file=str(token_file), resource_models={"NPU": NPU}))
    assert config.ray is not None and config.ray.resolved_token() == "file-token-0123456789abcdef0123456789"
    inline = RayConfig(token="inline-token-0123456789abcdef012345")
    assert "inline-token" not in repr(inline) and "inline-token" not in str(inline.model_dump())
    connector = build_connector(config, Settings(data_dir=tmp_path))
    assert isinstance(connector, RayConnector) and connector.kind == "RAY"
    assert "file-token" not in repr(connector)
    assert CenterConfig(name="r2", kind="RAY").ray == RayConfig()


# ---------------------------------------------------------------------- Serve replicas


def _replica_spec(reference: str, key: str, model_dir: Path, command: tuple[str, ...] | None = None) -> JobSpec:
    return JobSpec(
        reference=reference,
        name=f"served replica {reference}",
        command=command or (sys.executable, str(ONNX_SERVER), "--port", "1", "--model-dir", str(model_dir)),
        max_duration_seconds=600,
        environment={SERVICE_KEY: key, MODEL_DIR: str(model_dir), "AICN_SERVICE_PORT": "1"},
    )


@pytest.fixture
async def serving() -> AsyncIterator[RayConnector]:
    require_ray()
    # a replica reserves a tenth of a CPU: the shared head has two
    options = ServeOptions(replica_cpus=0.1)
    async for ray in _cleaning(_CleaningRayConnector("ray-serve", RAY_URL, resource_models=RESOURCE_MODELS, serve=options)):
        yield ray


@pytest.mark.ray
async def test_serve_replicas_are_one_application_scaled_by_its_replica_list(serving: RayConnector, tmp_path: Path) -> None:
    model = tmp_path / "model"
    subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, str(model)], check=True, capture_output=True, timeout=120)
    key = uuid.uuid4().hex[:12]
    first = await serving.submit(_replica_spec("r-one", key, model))
    again = await serving.submit(_replica_spec("r-one", key, model))  # a retried hand-over adds nothing
    assert first.external_id == again.external_id and first.external_id.startswith("serve:")
    await wait_for(serving, first.external_id, {CenterJobState.RUNNING}, timeout=90)
    url = await serving.server_url(first.external_id, "1")
    assert url.startswith("http://127.0.0.1:8270/aicn-service-")
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url + "/health")).status_code == 200
        answer = (await client.post(url + "/invoke", json={"inputs": [[2.0, 2.0]]})).json()
        assert answer["outputs"]["label"] == [1]

    second = await serving.submit(_replica_spec("r-two", key, model))
    running = await wait_for(serving, second.external_id, {CenterJobState.RUNNING}, timeout=90)
    assert running.started_at is not None
    assert "2 of 2 replicas running" in await serving.logs(second.external_id)

    await serving.cancel(first.external_id)
    [ended] = (await serving.status([StatusQuery(first.external_id)])).values()
    assert ended.state is CenterJobState.CANCELLED and ended.finished_at is not None and ended.started_at is not None
    assert (await serving.status([StatusQuery(second.external_id)]))[second.external_id].state is CenterJobState.RUNNING
    await serving.cancel(first.external_id)  # ended already: nothing to do
    await serving.cancel(second.external_id)
    async with httpx.AsyncClient(timeout=10) as client:
        applications = (await client.get(f"{RAY_URL}/api/serve/applications/")).json()["applications"]
    # the last replica took the application with it
    assert all(details["status"] == "DELETING" for name, details in applications.items() if key in name), applications
    with pytest.raises(JobNotFound):
        await serving.cancel(serve.external_id(serve.app_name(key), "never-made"))


@pytest.mark.ray
async def test_serve_replicas_run_the_built_in_runner_only(serving: RayConnector, tmp_path: Path) -> None:
    with pytest.raises(SubmissionRejected, match="built-in ONNX runner"):
        await serving.submit(_replica_spec("r-custom", "custom", tmp_path, command=("python", "my_server.py")))


def test_serve_configs_change_only_the_replica_list() -> None:
    name, data = serve.package()
    assert name == serve.package()[0] and name.startswith("_ray_pkg_") and data == serve.package()[1]  # content-addressed
    options = ServeOptions(replica_cpus=0.25)
    config = serve.app_config("aicn-service-1-ab", "/models/m", name, ["a"], api.Resources(num_cpus=1, custom={"NPU": 1}), options)
    assert config["deployments"][0]["ray_actor_options"] == {"num_cpus": 0.25, "resources": {"NPU": 1}}
    scaled = serve.with_references(config, ["a", "b"])
    assert scaled["deployments"][0]["num_replicas"] == 2 and serve.references_of(scaled) == ("a", "b")
    assert {key: value for key, value in scaled.items() if key != "deployments"} == {k: v for k, v in config.items() if k != "deployments"}
    body = serve.deploy_body([scaled], options)
    assert body["http_options"] == {"host": "127.0.0.1", "port": 8270}  # never the gateway's 8000
    assert serve.parse_external_id(serve.external_id("aicn-service-1-ab", "ref:x")) == ("aicn-service-1-ab", "ref:x")
    assert serve.parse_external_id("aicn-123") is None
