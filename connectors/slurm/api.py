"""Everything shaped by slurmrestd's ``v0.0.38`` API (Slurm 22.05), in one place.

Request bodies are built and response bodies read here, into plain records; the
connector never touches a raw body. A later API version (v0.0.39 and up wrap numbers as
``{set, infinite, number}``, take the environment as a list, report exit codes as
objects) gets a module of its own with the same functions.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import CenterJobState

API_VERSION = "v0.0.38"
API_PREFIX = f"/slurm/{API_VERSION}"

#: "Invalid job id specified": the id never existed, or Slurm already forgot the job
JOB_NOT_FOUND = 2017

#: node base states whose CPUs can take work, and flags that take a node out of service
_USABLE_NODE_STATES = frozenset({"idle", "mixed", "allocated", "completing"})
_UNUSABLE_NODE_FLAGS = frozenset(
    {
        "DRAIN",
        "FAIL",
        "NOT_RESPONDING",
        "POWERED_DOWN",
        "POWERING_DOWN",
        "POWER_DOWN",
        "POWERING_UP",
        "MAINTENANCE",
        "REBOOT_ISSUED",
        "REBOOT_REQUESTED",
        "INVALID_REG",
    }
)


# ---------------------------------------------------------------------- errors


@dataclass(frozen=True)
class SlurmError:
    """One entry of a body's ``errors`` list."""

    number: int | None
    error: str
    description: str = ""

    def __str__(self) -> str:
        text = self.error or "error"
        if self.description and self.description != self.error:
            text = f"{text}: {self.description}"
        return f"{text} (error {self.number})" if self.number is not None else text


def errors_of(body: Any) -> list[SlurmError]:
    """The errors a body carries; the number is ``error_number``, ``error_code`` or ``errno`` by endpoint."""
    if not isinstance(body, Mapping):
        return []
    found: list[SlurmError] = []
    for entry in body.get("errors") or ():
        if not isinstance(entry, Mapping):
            continue
        number = next((entry[key] for key in ("error_number", "error_code", "errno") if isinstance(entry.get(key), int)), None)
        found.append(SlurmError(number, str(entry.get("error") or ""), str(entry.get("description") or "")))
    return found


def release_of(body: Any) -> str | None:
    """The Slurm release a response's ``meta`` names (``"22.05.8"``)."""
    try:
        release = body["meta"]["Slurm"]["release"]
    except (KeyError, TypeError):
        return None
    return str(release) if release else None


# ---------------------------------------------------------------------- ping


@dataclass(frozen=True)
class ControllerPing:
    hostname: str
    up: bool
    mode: str


def parse_pings(body: Mapping[str, Any]) -> list[ControllerPing]:
    return [
        ControllerPing(str(entry.get("hostname", "")), entry.get("ping") == "UP", str(entry.get("mode", "")))
        for entry in body.get("pings") or ()
    ]


# ---------------------------------------------------------------------- nodes and GRES


@dataclass(frozen=True)
class GresCount:
    """``gpu:a100:2``: a GRES name, its type (``None`` when untyped) and a count."""

    name: str
    type: str | None
    count: int


@dataclass(frozen=True)
class NodeInfo:
    name: str
    usable: bool
    partitions: tuple[str, ...]
    cpus: int
    idle_cpus: int
    gres: tuple[GresCount, ...]
    gres_used: tuple[GresCount, ...]


def parse_nodes(body: Mapping[str, Any]) -> list[NodeInfo]:
    return [_parse_node(raw) for raw in body.get("nodes") or ()]


def _parse_node(raw: Mapping[str, Any]) -> NodeInfo:
    state = str(raw.get("state") or "").lower()
    flags = {str(flag).upper() for flag in raw.get("state_flags") or ()}
    return NodeInfo(
        name=str(raw.get("name", "")),
        usable=state in _USABLE_NODE_STATES and not flags & _UNUSABLE_NODE_FLAGS,
        partitions=tuple(str(name) for name in raw.get("partitions") or ()),
        cpus=_int(raw.get("cpus")),
        idle_cpus=_int(raw.get("idle_cpus")),
        gres=parse_gres(raw.get("gres")),
        gres_used=parse_gres(raw.get("gres_used")),
    )


_GRES_COUNT = re.compile(r"^(\d+)([KMGTP]?)$", re.IGNORECASE)
_GRES_MULTIPLIER = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_gres(text: Any) -> tuple[GresCount, ...]:
    """``"gpu:a100:2(S:0-1),gpu:v100:1"`` (node ``gres``) or ``"gpu:a100:1(IDX:0)"`` (``gres_used``)."""
    if not isinstance(text, str) or text in ("", "(null)", "N/A"):
        return ()
    found: list[GresCount] = []
    for item in _split_outside_parentheses(text):
        item = item.split("(", 1)[0].strip()
        if not item:
            continue
        parts = item.split(":")
        count = 1
        match = _GRES_COUNT.match(parts[-1]) if len(parts) > 1 else None
        if match:
            count = int(match.group(1)) * _GRES_MULTIPLIER[match.group(2).upper()]
            parts = parts[:-1]
        name = parts[0]
        gres_type = ":".join(parts[1:]) or None
        found.append(GresCount(name, gres_type, count))
    return tuple(found)


def _split_outside_parentheses(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return items


def default_partition(body: Mapping[str, Any]) -> str | None:
    """The partition flagged ``default`` in a ``/partitions`` answer."""
    for raw in body.get("partitions") or ():
        if "default" in {str(flag).lower() for flag in raw.get("flags") or ()}:
            return str(raw.get("name"))
    return None


# ---------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobRecord:
    """What the connector needs of one job in a ``/jobs`` or ``/job/{id}`` answer."""

    job_id: str
    name: str
    user_name: str
    state: str
    state_reason: str
    exit_status: int | None
    start_time: int
    end_time: int
    time_limit_minutes: int | None
    comment: str


def parse_jobs(body: Mapping[str, Any]) -> list[JobRecord]:
    return [_parse_job(raw) for raw in body.get("jobs") or ()]


def _parse_job(raw: Mapping[str, Any]) -> JobRecord:
    exit_status = raw.get("exit_code")
    time_limit = raw.get("time_limit")
    return JobRecord(
        job_id=str(raw.get("job_id")),
        name=str(raw.get("name") or ""),
        user_name=str(raw.get("user_name") or ""),
        state=str(raw.get("job_state") or "").upper(),
        state_reason=str(raw.get("state_reason") or ""),
        exit_status=exit_status if isinstance(exit_status, int) else None,
        start_time=_int(raw.get("start_time")),
        end_time=_int(raw.get("end_time")),
        time_limit_minutes=time_limit if isinstance(time_limit, int) and time_limit >= 0 else None,
        comment=str(raw.get("comment") or ""),
    )


def submitted_job_id(body: Mapping[str, Any]) -> str | None:
    job_id = body.get("job_id")
    return str(job_id) if isinstance(job_id, int) and job_id > 0 else None


@dataclass(frozen=True)
class JobRequest:
    """One batch job as the connector wants it, before it becomes a v0.0.38 body."""

    name: str
    script: str
    environment: Mapping[str, str]
    working_directory: str
    standard_output: str
    time_limit_minutes: int
    cpus_per_task: int
    partition: str | None = None
    memory_mb: int | None = None
    gres: str | None = None


def time_limit_minutes(max_duration_seconds: float) -> int:
    """Slurm's limits are whole minutes: round up, and never ask for none."""
    return max(1, math.ceil(max_duration_seconds / 60))


def job_submit_body(request: JobRequest) -> dict[str, Any]:
    """The ``POST /job/submit`` body: one task on one node, stderr into stdout, no requeue."""
    job: dict[str, Any] = {
        "name": request.name,
        "environment": dict(request.environment),
        "current_working_directory": request.working_directory,
        "standard_output": request.standard_output,
        "time_limit": request.time_limit_minutes,
        "nodes": [1, 1],
        "tasks": 1,
        "cpus_per_task": request.cpus_per_task,
        # a requeued batch script would restart its progress ordinals and truncate its output
        "requeue": False,
    }
    if request.partition:
        job["partition"] = request.partition
    if request.memory_mb is not None:
        job["memory_per_node"] = request.memory_mb
    if request.gres:
        job["gres"] = request.gres
    return {"script": request.script, "job": job}


# ---------------------------------------------------------------------- states


_QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
_STARTING_STATES = frozenset({"CONFIGURING", "POWER_UP_NODE"})
# SUSPENDED and STOPPED jobs keep their allocation and go on where they stopped
_RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"})
_FAILURE_REASONS = {
    "NODE_FAIL": "NODE_FAIL: a node the job ran on failed",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY: the job used more memory than it was given",
    "BOOT_FAIL": "BOOT_FAIL: a node failed to boot for the job",
    "DEADLINE": "DEADLINE: the job could not end before its deadline",
    "PREEMPTED": "PREEMPTED: the job was preempted by another job",
    "SPECIAL_EXIT": "SPECIAL_EXIT: the job ended in Slurm's special exit state",
    "REVOKED": "REVOKED: the job was revoked by the federation",
}


@dataclass(frozen=True)
class JobOutcome:
    state: CenterJobState
    exit_code: int | None
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None


def decode_exit_status(raw: int | None) -> tuple[int | None, int | None]:
    """``(exit code, signal)`` from a raw wait(2) status: 768 is exit 3, 15 is SIGTERM."""
    if raw is None or raw < 0:
        return None, None
    signal_number = raw & 0x7F
    if signal_number:
        return None, signal_number
    return (raw >> 8) & 0xFF, None


def job_outcome(record: JobRecord) -> JobOutcome:
    """The contract's view of a job: state, exit code (128 + signal when killed), reason, times."""
    state, reason = _map_state(record)
    exit_code, signal_number = decode_exit_status(record.exit_status)
    if signal_number is not None:
        exit_code = 128 + signal_number
    if state is CenterJobState.FAILED and reason is None:
        if signal_number is not None:
            reason = f"SIGNAL: the job was killed by signal {signal_number} ({_signal_name(signal_number)})"
        else:
            reason = f"EXIT_CODE: the command exited with code {exit_code}"
    never_ran = state is CenterJobState.CANCELLED and record.exit_status == 0  # cancelled while pending
    if never_ran:
        exit_code = None
    started = state not in (CenterJobState.QUEUED, CenterJobState.STARTING) and not never_ran
    return JobOutcome(
        state=state,
        exit_code=exit_code if state.terminal else None,
        reason=reason,
        started_at=_timestamp(record.start_time) if started else None,
        finished_at=_timestamp(record.end_time) if state.terminal else None,
    )


def _map_state(record: JobRecord) -> tuple[CenterJobState, str | None]:
    state = record.state
    pending_reason = record.state_reason if record.state_reason not in ("", "None") else None
    if state in _QUEUED_STATES:
        return CenterJobState.QUEUED, pending_reason and f"Slurm: {pending_reason}"
    if state in _STARTING_STATES:
        return CenterJobState.STARTING, None
    if state in _RUNNING_STATES:
        return CenterJobState.RUNNING, None
    if state == "COMPLETED":
        return CenterJobState.SUCCEEDED, None
    if state == "FAILED":
        return CenterJobState.FAILED, None
    if state == "CANCELLED":
        return CenterJobState.CANCELLED, "CANCELLED: the job was cancelled"
    if state == "TIMEOUT":
        limit = f" of {record.time_limit_minutes} min" if record.time_limit_minutes is not None else ""
        return CenterJobState.FAILED, f"TIME_LIMIT: the job ran past its time limit{limit} and was killed"
    if state in _FAILURE_REASONS:
        return CenterJobState.FAILED, _FAILURE_REASONS[state]
    return CenterJobState.QUEUED, f"Slurm reports the state {state or '(none)'}, which this gateway does not know"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _timestamp(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch > 0 else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def jobs_named(records: Sequence[JobRecord], name: str, user_name: str) -> list[JobRecord]:
    """The jobs of ``user_name`` called ``name``, newest first."""
    matching = [record for record in records if record.name == name and record.user_name == user_name]
    return sorted(matching, key=lambda record: int(record.job_id) if record.job_id.isdigit() else 0, reverse=True)
