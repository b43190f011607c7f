"""``aicn job submit --file job.toml``: a TOML file whose keys are SubmitJobInput's, request as a table.

name = "train"
command = ["python", "train.py", "--epochs", "3"]
policy = "CHEAPEST"
environment = { SEED = "1" }

[request]
maxDurationMinutes = 30
accelerator = "cpu-core"
devices = 2
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from aicn.client.errors import ClientError

INPUT_KEYS = frozenset(
    {"name", "command", "request", "kind", "environment", "centerId", "policy", "inputDatasetIds", "outputModelName", "idempotencyKey"}
)
REQUEST_KEYS = frozenset({"maxDurationMinutes", "accelerator", "devices", "standardUnits", "cpus", "memoryGb"})


def read_job_file(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError("FILE_NOT_FOUND", f"no job file {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ClientError("BAD_JOB_FILE", f"{path} is not a readable TOML file: {error}") from None
    unknown = sorted(set(document) - INPUT_KEYS)
    if unknown:
        raise ClientError(
            "BAD_JOB_FILE", f"{path}: unknown keys {', '.join(unknown)} (the keys are SubmitJobInput's: {', '.join(sorted(INPUT_KEYS))})"
        )
    request = document.get("request", {})
    if not isinstance(request, dict):
        raise ClientError("BAD_JOB_FILE", f"{path}: request is a table ([request])")
    unknown = sorted(set(request) - REQUEST_KEYS)
    if unknown:
        raise ClientError(
            "BAD_JOB_FILE", f"{path}: unknown keys in [request]: {', '.join(unknown)} (known: {', '.join(sorted(REQUEST_KEYS))})"
        )
    command = document.get("command")
    if command is not None and not (isinstance(command, list) and all(isinstance(word, str) for word in command)):
        raise ClientError("BAD_JOB_FILE", f'{path}: command is a list of strings, e.g. command = ["python", "train.py"]')
    return {**document, "request": dict(request)}
