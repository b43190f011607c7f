"""jobLogs on SLURM and RAY centers (real slurmrestd, real Ray head): the same stream as on LOCAL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.jobs_helpers import PROGRESS_SCRIPT, collect_events, python_job, submit
from tests.ray_helpers import ray_center, require_ray
from tests.slurm_helpers import slurm_center
from tests.test_job_logs import LOGS, lines_of

TICKS = "import time\nfor i in range(5):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n"


async def _follow(gateway: Gateway, job_id: str, timeout: float) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def gather() -> None:
        async for data in gateway.client.subscribe(LOGS, {"id": job_id, "tail": 100}, timeout=timeout):
            messages.append(data["jobLogs"])

    await asyncio.wait_for(gather(), timeout)
    return messages


@pytest.mark.slurm
async def test_a_slurm_jobs_lines_stream_live(gateway_factory: Any, slurm_output_dir: str) -> None:
    gateway: Gateway = await gateway_factory([slurm_center(slurm_output_dir)])
    job = await submit(gateway.client, python_job(TICKS, name="slurm-ticks"))
    messages = await _follow(gateway, job["id"], 90)
    assert [line for line in lines_of(messages) if line.startswith("tick")] == [f"tick {i}" for i in range(5)]
    assert len([message for message in messages if message["lines"]]) >= 2  # as the job wrote them


@pytest.mark.ray
async def test_a_ray_jobs_lines_stream_live_and_its_progress_comes_from_the_tail(gateway_factory: Any) -> None:
    require_ray()
    gateway: Gateway = await gateway_factory([ray_center()])
    job = await submit(gateway.client, python_job(TICKS, name="ray-ticks"))
    messages = await _follow(gateway, job["id"], 90)
    assert [line for line in lines_of(messages) if line.startswith("tick")] == [f"tick {i}" for i in range(5)]
    assert len([message for message in messages if message["lines"]]) >= 2
    # progress over the same tail: each report once, the last one with the job's end
    progressing = await submit(gateway.client, python_job(PROGRESS_SCRIPT, name="ray-progress"))
    events = await asyncio.wait_for(collect_events(gateway.client, progressing["id"]), 90)
    steps = [event["progress"]["step"] for event in events if event["kind"] == "PROGRESS"]
    assert steps == [1, 2, 3] and events[-1]["state"] == "SUCCEEDED"
