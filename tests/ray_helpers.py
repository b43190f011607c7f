"""The real Ray head of ``scripts/start-ray.sh`` for tests: reach it, restart it, build RAY centers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicn.settings import CenterConfig, DeviceConfig, RayConfig

RAY_URL = os.environ.get("AICN_TEST_RAY_URL", "http://127.0.0.1:8265")
START_RAY = Path(__file__).resolve().parent.parent / "scripts" / "start-ray.sh"
NPU = "huawei-ascend-910b"
#: the head of start-ray.sh declares 2 CPUs and the custom resource {"NPU": 2}
RESOURCE_MODELS = {"NPU": NPU}


def ray_answers(url: str = RAY_URL) -> bool:
    try:
        return httpx.get(f"{url}/api/version", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def require_ray(url: str = RAY_URL) -> None:
    """Skip on a laptop without the head; under CI a missing head fails the run."""
    if ray_answers(url):
        return
    message = f"no Ray Jobs API at {url} (run scripts/start-ray.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: required)")
    pytest.skip(message)


def run_start_ray(*arguments: str) -> None:
    subprocess.run(["bash", str(START_RAY), *arguments], check=True, capture_output=True, timeout=120)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


def ray_center(name: str = "ray", url: str = RAY_URL, **overrides: Any) -> CenterConfig:
    require_ray(url)
    options: dict[str, Any] = {
        "name": name,
        "kind": "RAY",
        "display_name": "Test Ray cluster",
        "region": "test",
        "devices": [
            DeviceConfig(accelerator="cpu-core", count=0, price_per_unit_hour="0.45"),
            DeviceConfig(accelerator=NPU, count=0, price_per_unit_hour="1.50"),
        ],
        "poll_interval_seconds": 0.25,
        "ray": RayConfig(url=url, resource_models=RESOURCE_MODELS),
    }
    options.update(overrides)
    return CenterConfig(**options)
