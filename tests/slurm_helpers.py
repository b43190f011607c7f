"""Building SLURM center configurations for tests against the real slurmrestd."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aicn.settings import CenterConfig, DeviceConfig, SlurmConfig
from tests.conftest import require_service

ENV_FILE = Path(os.environ.get("SLURM_ENV_FILE", "/run/slurm-ci.env"))
GPU = "nvidia-a100-80gb"


def slurm_center(output_dir: str, url: str = "http://127.0.0.1:6820", name: str = "hpc", **overrides: Any) -> CenterConfig:
    require_service("127.0.0.1", 6820, "slurmrestd (scripts/start-slurm.sh)")
    options: dict[str, Any] = {
        "name": name,
        "kind": "SLURM",
        "display_name": "Test Slurm cluster",
        "region": "test",
        "devices": [
            DeviceConfig(accelerator="cpu-core", count=0, price_per_unit_hour="0.40"),
            DeviceConfig(accelerator=GPU, count=0, price_per_unit_hour="2.00"),
        ],
        "poll_interval_seconds": 0.5,
        "slurm": SlurmConfig(url=url, token_file=str(ENV_FILE), output_dir=output_dir, gres_models={"a100": GPU}, progress_interval=0.2),
    }
    options.update(overrides)
    return CenterConfig(**options)
