"""The RAY connector against the real Ray head (scripts/start-ray.sh), plus what only RAY does.

Without a head the live tests are skipped on a developer machine and fail in CI (``CI=true``).
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aicn.runtime import build_connector
from aicn.settings import CenterConfig, RayConfig, Settings
from connectors.base import CenterJobState
from connectors.errors import CenterUnreachable
from connectors.ray import api
from connectors.ray.connector import RayConnector
from connectors.ray.progress import MAX_PROGRESS_LINE, LogCursor
from tests.connector_contract import PYTHON, ConnectorContract, wait_for
from tests.leftovers import RemembersSubmissions
from tests.ray_helpers import NPU, RAY_URL, RESOURCE_MODELS, require_ray


class _CleaningRayConnector(RemembersSubmissions, RayConnector):
    """Remembers what it submitted, so a failing test leaves nothing running on the shared center."""


@pytest.fixture
async def connector() -> AsyncIterator[RayConnector]:
    require_ray()
    # alone, without a gateway's reconciler to stop jobs at their limits: the node-side guard does, at once
    ray = _CleaningRayConnector("ray-test", RAY_URL, resource_models=RESOURCE_MODELS, backstop_seconds=0)
    ray.submitted = []
    await ray.start()
    try:
        yield ray
    finally:
        try:
            await ray.cancel_leftovers()
        finally:
            await ray.close()


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
    assert [report.ordinal for report in cursor.reports] == [1]
    cursor.feed('ion": 1.0}\nother\n' + "y" * (MAX_PROGRESS_LINE + 10))
    cursor.feed('AICN_PROGRESS {"fraction": 0.1}\n')  # the end of an overlong line: not a report
    cursor.feed('AICN_PROGRESS {"fraction": 0.25}\n')
    assert [(report.ordinal, report.fraction) for report in cursor.reports] == [(1, 0.5), (2, 1.0), (3, 0.25)]
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
