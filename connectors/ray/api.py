"""Everything shaped by the Ray Jobs REST API (Ray 2.60, API version 4), in one place.

Request bodies are built and response bodies read here, into plain records; the
connector never touches a raw body. Facts of the API this module relies on (checked
against a real head, see docs/ray.md):

* ``POST /api/jobs/`` takes the submission; a ``submission_id`` that exists already is
  answered with HTTP 500 and a text traceback ending ``... already exists``;
* ``GET /api/jobs/{id}`` is one job (404 when Ray does not know it), ``start_time`` and
  ``end_time`` in epoch milliseconds; ``GET /api/jobs/{id}/logs`` is the whole log so far;
* ``GET /api/cluster_status`` reports ``[used, total]`` per resource per node, with keys
  camel-cased by the dashboard (``accelerator_type:A100`` reads ``acceleratorType:A100``).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from connectors.base import CenterJobState

JOBS = "/api/jobs/"
VERSION = "/api/version"
CLUSTER_STATUS = "/api/cluster_status"

#: the exit status of coreutils ``timeout`` when the limit ended the command
TIMEOUT_EXIT = 124
#: seconds ``timeout`` waits after SIGTERM before it sends SIGKILL
KILL_AFTER_SECONDS = 10
#: how long past a job's limit the node-side ``timeout`` waits for the gateway to stop the job
BACKSTOP_SECONDS = 60.0
#: what a GPU request adds for its accelerator type, as Ray's own ``accelerator_type`` option does
ACCELERATOR_TYPE_SHARE = 0.001

META_REFERENCE = "aicn_reference"
META_NAME = "aicn_name"
META_LIMIT = "aicn_max_duration_seconds"
META_ACCELERATOR = "aicn_accelerator"
META_DEVICES = "aicn_devices"

_STATES = {
    "PENDING": CenterJobState.QUEUED,
    "RUNNING": CenterJobState.RUNNING,
    "SUCCEEDED": CenterJobState.SUCCEEDED,
    "FAILED": CenterJobState.FAILED,
    "STOPPED": CenterJobState.CANCELLED,
}

#: lines Ray's job supervisor writes into a job's log besides the job's own output
_RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\t[A-Z]+ job_manager\.py:\d+ -- ")


def job_path(submission_id: str, suffix: str = "") -> str:
    return JOBS + quote(submission_id, safe="") + suffix


# ---------------------------------------------------------------------- submission


@dataclass(frozen=True)
class Resources:
    """What a job's entrypoint asks Ray to reserve."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    memory_bytes: int | None = None
    custom: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRequest:
    submission_id: str
    command: Sequence[str]
    max_duration_seconds: float
    environment: Mapping[str, str]
    metadata: Mapping[str, str]
    resources: Resources


def entrypoint(command: Sequence[str], max_duration_seconds: float) -> str:
    """The shell line Ray runs: the argv quoted word by word (never re-split), under ``timeout``.

    Ray's Jobs API has no time limit of its own. The gateway stops a job at its limit (its
    reconciler, through the stop endpoint); coreutils ``timeout`` on the node is the backstop for
    a gateway that is away, given the limit plus ``BACKSTOP_SECONDS``: it ends the job (SIGTERM
    to its process group, SIGKILL ``KILL_AFTER_SECONDS`` later) and exits 124."""
    if not command:
        raise ValueError("the command is empty")
    if any("\0" in word for word in command):
        raise ValueError("a command word holds a NUL character")
    limit = f"{math.ceil(max_duration_seconds * 1000) / 1000:g}s"
    return shlex.join(["timeout", f"--kill-after={KILL_AFTER_SECONDS}", limit, *command])


def submit_body(request: JobRequest, backstop_seconds: float = BACKSTOP_SECONDS) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entrypoint": entrypoint(request.command, request.max_duration_seconds + backstop_seconds),
        "submission_id": request.submission_id,
        "metadata": dict(request.metadata),
        "runtime_env": {"env_vars": dict(request.environment)},
    }
    resources = request.resources
    if resources.num_cpus is not None:
        body["entrypoint_num_cpus"] = resources.num_cpus
    if resources.num_gpus is not None:
        body["entrypoint_num_gpus"] = resources.num_gpus
    if resources.memory_bytes is not None:
        body["entrypoint_memory"] = resources.memory_bytes
    if resources.custom:
        body["entrypoint_resources"] = dict(resources.custom)
    return body


def is_duplicate(text: str) -> bool:
    """Ray's answer to a submission whose ``submission_id`` it has already."""
    return "already exists" in text and "submission_id" in text


# ---------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobRecord:
    submission_id: str
    status: str
    message: str
    error_type: str | None
    exit_code: int | None
    start_time: datetime | None
    end_time: datetime | None
    metadata: Mapping[str, str]
    entrypoint: str

    @property
    def state(self) -> CenterJobState | None:
        return _STATES.get(self.status)

    @property
    def time_limit(self) -> float | None:
        try:
            return float(self.metadata[META_LIMIT])
        except (KeyError, ValueError):
            return None


def held_devices(records: Sequence[JobRecord]) -> dict[str, int]:
    """Devices per catalog model that the gateway's running jobs hold, by their metadata."""
    held: dict[str, int] = {}
    for record in records:
        if record.status != "RUNNING" or META_ACCELERATOR not in record.metadata:
            continue
        try:
            devices = int(record.metadata.get(META_DEVICES, "0"))
        except ValueError:
            continue
        model = record.metadata[META_ACCELERATOR]
        held[model] = held.get(model, 0) + devices
    return held


def parse_jobs(body: Any) -> list[JobRecord]:
    """``GET /api/jobs/``: a bare array, drivers started outside the Jobs API left out."""
    if not isinstance(body, list):
        raise ValueError("the job list is not a JSON array")
    return [parse_job(entry) for entry in body if isinstance(entry, Mapping) and entry.get("type", "SUBMISSION") == "SUBMISSION"]


def parse_job(body: Mapping[str, Any]) -> JobRecord:
    exit_code = body.get("driver_exit_code")
    metadata = body.get("metadata")
    return JobRecord(
        submission_id=str(body.get("submission_id") or ""),
        status=str(body.get("status") or ""),
        message=str(body.get("message") or ""),
        error_type=str(body["error_type"]) if body.get("error_type") else None,
        exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
        start_time=_epoch_ms(body.get("start_time")),
        end_time=_epoch_ms(body.get("end_time")),
        metadata={str(key): str(value) for key, value in metadata.items()} if isinstance(metadata, Mapping) else {},
        entrypoint=str(body.get("entrypoint") or ""),
    )


def cannot_start_unexplained(record: JobRecord) -> bool:
    """A job that could not start whose message lacks ``timeout``'s words: Ray read the log before it was flushed."""
    return record.status == "FAILED" and record.exit_code in (126, 127) and _COULD_NOT_START.search(record.message) is None


def failure_reason(record: JobRecord, log: str = "") -> str | None:
    """Why a job did not succeed, in the gateway's words (``TIME_LIMIT: ...`` when ``timeout`` ended it).

    ``log`` is the job's log, read when Ray's message is not enough (:func:`cannot_start_unexplained`).
    """
    if record.status == "STOPPED":
        return "CANCELLED: the job was stopped through the Ray Jobs API"
    if record.status != "FAILED":
        return None
    if record.exit_code in (TIMEOUT_EXIT, 128 + 9) and _ran_past_limit(record):
        return "TIME_LIMIT: the job ran past its maxDurationMinutes and was killed"
    refused = _COULD_NOT_START.search(f"{record.message}\n{log}") if record.exit_code in (126, 127) else None
    if refused is not None:
        code = "COMMAND_NOT_FOUND" if record.exit_code == 127 else "CANNOT_START"
        return f"{code}: cannot start {refused.group(1)!r}: {refused.group(2)}"
    first_line = record.message.strip().splitlines()[0] if record.message.strip() else "no detail"
    kind = record.error_type or "FAILED"
    return f"{kind}: {first_line[:300]}"


#: what coreutils ``timeout`` says when it cannot run the command (quotes follow the locale)
_COULD_NOT_START = re.compile(r"^timeout: failed to run command [\u2018'`\"](.*)[\u2019'\"]: (.+)$", re.MULTILINE)


def _ran_past_limit(record: JobRecord) -> bool:
    limit = record.time_limit
    if limit is None or record.start_time is None or record.end_time is None:
        return False
    return (record.end_time - record.start_time).total_seconds() >= limit


def logs_of(body: Mapping[str, Any]) -> str:
    logs = body.get("logs")
    return logs if isinstance(logs, str) else ""


def job_output(log: str, record: JobRecord | None = None) -> list[str]:
    """The job's own lines of a Ray job log, without the lines Ray's supervisor adds."""
    started = f"Running entrypoint for job {record.submission_id}: " if record is not None else "Running entrypoint for job "
    return [line for line in log.splitlines() if not (_RAY_LOG_LINE.match(line) or line.startswith(started))]


# ---------------------------------------------------------------------- cluster


def ray_version(body: Mapping[str, Any]) -> str | None:
    version = body.get("ray_version")
    return str(version) if version else None


def dashboard_key(resource: str) -> str:
    """A resource's name as ``/api/cluster_status`` spells it (Ray's ``to_camel_case``)."""
    first, *rest = resource.split("_")
    return first + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class NodeResources:
    """One node's resources: name -> (used, total), names as the dashboard spells them."""

    node_id: str
    usage: Mapping[str, tuple[float, float]]

    def total(self, resource: str) -> float:
        return self.usage.get(dashboard_key(resource), (0.0, 0.0))[1]

    def free(self, resource: str) -> float:
        used, total = self.usage.get(dashboard_key(resource), (0.0, 0.0))
        return max(0.0, total - used)

    def has(self, resource: str) -> bool:
        return self.total(resource) > 0


def parse_nodes(body: Mapping[str, Any]) -> list[NodeResources]:
    try:
        by_node = body["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"] or {}
    except (KeyError, TypeError):
        raise ValueError("the cluster status holds no usageByNode") from None
    nodes = []
    for node_id, usage in by_node.items():
        pairs: dict[str, tuple[float, float]] = {}
        for name, pair in (usage or {}).items():
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(value, (int, float)) for value in pair):
                pairs[str(name)] = (float(pair[0]), float(pair[1]))
        nodes.append(NodeResources(str(node_id), pairs))
    return nodes


def _epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)
