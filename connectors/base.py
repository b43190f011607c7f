"""The one contract every center kind implements.

Plain, immutable dataclasses go in and come out; nothing here knows GraphQL or the
database. A connector speaks to exactly one center.

Life of a job as a connector sees it:

* ``submit(spec)`` hands the job over and returns the center's id for it;
* ``status([...])`` reports many jobs in one call, including the progress reports
  each job made since the caller last looked (``progress_after``: the last ordinal the
  caller has recorded; a connector that keeps reports in memory forgets those up to it);
* ``cancel(id)`` stops it; ``logs(id, tail_lines)`` returns the tail of its output;
* ``read_log(id, offset, max_bytes)`` reads its output incrementally: at most ``max_bytes``
  from a byte offset (a negative offset counts back from the end), and where to read next.

A job the center does not know is left out of ``status``'s answer: the caller decides
what a vanished job means, the connector never invents a state for it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.errors import LogsNotReadable, SubmissionRejected


class CenterJobState(str, enum.Enum):
    """A job's state as a center reports it."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (CenterJobState.SUCCEEDED, CenterJobState.FAILED, CenterJobState.CANCELLED)


@dataclass(frozen=True)
class CenterDescription:
    """What a center says about itself when asked (also its health probe)."""

    kind: str
    name: str
    version: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceCapacity:
    """How many devices of one catalog model a center has, and how many are free."""

    accelerator: str
    devices_total: int
    devices_free: int
    partition: str | None = None
    #: the center's own price per standard-unit-hour, when it sets one (a PEER quotes its network's)
    price_per_unit_hour: Decimal | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything a center needs to run one job.

    ``reference`` is the gateway's own unique name for the job; a connector keeps it with
    the job so that a submission interrupted by a crash can be found again.
    """

    reference: str
    name: str
    command: tuple[str, ...]
    max_duration_seconds: float
    environment: Mapping[str, str] = field(default_factory=dict)
    accelerator: str = "cpu-core"
    devices: int = 1
    cpus: int | None = None
    memory_gb: float | None = None
    partition: str | None = None
    #: the stable ids of the gateways the job has passed through, its origin first (this one last)
    via: tuple[str, ...] = ()
    #: folders of this job alone (its input and output folders): a center that runs each job as a user
    #: of its own hands them to that user (0700) while it runs, and back to the gateway's user after
    private_folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuoteRequest:
    """A resource request as a user gave it, for a center that quotes for itself."""

    max_duration_minutes: float
    accelerator: str | None = None
    devices: int | None = None
    standard_units: float | None = None
    cpus: int | None = None
    memory_gb: float | None = None
    policy: str = "CHEAPEST"


@dataclass(frozen=True)
class CenterQuote:
    """A center's own best offer for a QuoteRequest, with its own reason and estimated start."""

    accelerator: str
    devices: int
    devices_total: int
    devices_free: int
    price_per_unit_hour: Decimal | None
    feasible: bool
    reason: str | None = None
    estimated_start: datetime | None = None


@dataclass(frozen=True)
class Submission:
    """The center's answer to a submission."""

    external_id: str
    state: CenterJobState


@dataclass(frozen=True)
class ProgressReport:
    """One progress report a job made; ``ordinal`` counts a job's reports from 1."""

    ordinal: int
    at: datetime
    fraction: float | None = None
    step: int | None = None
    total_steps: int | None = None
    message: str | None = None
    metrics: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StatusQuery:
    """Ask for one job's status and the progress reports after ``progress_after``, the last ordinal
    the caller has recorded (it does not ask for those again: a connector may forget them)."""

    external_id: str
    progress_after: int = 0


@dataclass(frozen=True)
class JobStatus:
    """One job's state at its center, and its progress reports since the caller asked."""

    external_id: str
    state: CenterJobState
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: tuple[ProgressReport, ...] = ()


#: the most one ``read_log`` call returns, whatever the caller asks: a read costs a bounded time and memory
MAX_LOG_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a job's output: ``data`` starts at byte ``start`` of the output; read on from ``next_offset``.

    ``start`` differs from the offset asked for when the center no longer holds the bytes in between,
    or the output was replaced (the caller tells its reader that output was skipped); ``next_offset``
    is ``start + len(data)``.
    """

    data: bytes
    start: int
    next_offset: int


class Connector(abc.ABC):
    """One compute center behind one small async interface."""

    kind: str = "ABSTRACT"
    #: True for a center that prices requests itself (``quote``): the gateway asks it instead of its capacity
    quotes_itself: bool = False
    #: True when the center has no time limit of its own that ends a job promptly: the gateway's
    #: reconciler then stops a job that runs past its limit (through ``cancel``) and ends it TIME_LIMIT
    time_limits_by_gateway: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        #: called when the center tells of a change unasked (a live link): the caller looks sooner
        self.on_activity: Callable[[], None] | None = None
        #: called with the external ids of jobs whose state or progress the center has just
        #: told of (a LOCAL job's output as it is written): the caller looks at those jobs now
        self.on_jobs_changed: Callable[[Collection[str]], None] | None = None
        #: True while the center tells of every change of its jobs through ``on_jobs_changed`` (a LOCAL
        #: center following its jobs' files): the caller's poll is then a safety net, not the news
        self.follows_jobs = False

    async def quote(self, request: QuoteRequest) -> CenterQuote | None:
        """The center's own offer; None (the default) leaves pricing to the gateway's configuration."""
        return None

    async def charges(self, external_ids: Sequence[str]) -> dict[str, Decimal] | None:
        """What the center charged for each of these jobs, when it keeps its own bills; None when it does not."""
        return None

    async def start(self) -> None:
        """Open connections, recover local state; called once before any other call."""

    async def close(self) -> None:
        """Release what ``start`` opened."""

    @abc.abstractmethod
    async def describe(self) -> CenterDescription:
        """Who the center is; raises a ConnectorError when it cannot be reached."""

    @abc.abstractmethod
    async def capacity(self) -> list[DeviceCapacity]:
        """Devices per catalog model, total and free."""

    @abc.abstractmethod
    async def submit(self, spec: JobSpec) -> Submission:
        """Hand a job to the center; raises SubmissionRejected when it refuses."""

    @abc.abstractmethod
    async def status(self, queries: Sequence[StatusQuery]) -> dict[str, JobStatus]:
        """Status of many jobs in one call; jobs the center does not know are left out."""

    @abc.abstractmethod
    async def cancel(self, external_id: str) -> None:
        """Stop a job; a job already finished is left as it is. Raises JobNotFound."""

    @abc.abstractmethod
    async def logs(self, external_id: str, tail_lines: int = 100) -> str:
        """The last ``tail_lines`` lines of the job's output. Raises JobNotFound."""

    async def server_host(self, external_id: str) -> str:
        """Where the gateway reaches a server a running job bound on its node (an inference
        replica). Never shown to clients. Raises ConnectorError where this kind cannot serve."""
        raise SubmissionRejected(f"a {self.kind} center cannot serve models", center=self.name)

    async def server_url(self, external_id: str, port: str) -> str:
        """The base URL of the server a running job bound on ``port`` (its ``/health`` and ``/invoke``
        lie under it); a kind whose replicas share a proxy answers its own. Never shown to clients."""
        return f"http://{await self.server_host(external_id)}:{port}"

    async def read_log(self, external_id: str, offset: int, max_bytes: int) -> LogChunk:
        """At most ``max_bytes`` (and MAX_LOG_READ_BYTES) of the job's output from byte ``offset``;
        a negative offset reads the last ``-offset`` bytes there are. Nothing written yet: empty data.

        Bounded in time and memory whatever the output holds (one line of any length included).
        Raises JobNotFound; a kind that cannot read incrementally raises LogsNotReadable."""
        raise LogsNotReadable(f"{self.kind} centers cannot read a job's output incrementally", center=self.name)
