"""Jobs in the graph: the Job node, its events, progress and placement."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.types import Info

from connectors.base import MAX_LOG_READ_BYTES
from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.context import Context
from graph.core.money import Money
from graph.core.relay import Connection, Node, connection_from_page
from graph.core.scalars import JSON, BigInt
from graph.jobs.enums import JobEventKind, JobKind, JobState, PlacementPolicy
from resolvers.billing.pricing import cost_so_far
from resolvers.common.errors import BadRequest
from resolvers.common.ids import page_size, to_global_id
from resolvers.jobs.ledger import EventRecord
from resolvers.jobs.records import JobRow
from resolvers.jobs.states import TERMINAL_STATES

if TYPE_CHECKING:
    from graph.access.accounts import Account
    from graph.billing.types import UsageRecord
    from graph.data.types import Dataset, Model

MAX_TAIL_LINES = 10_000
ZERO = Decimal("0.000000")


@strawberry.type(description="A progress report the job made (see the README for how a job reports progress).")
class JobProgress:
    fraction: float | None
    step: int | None
    total_steps: int | None
    message: str | None
    metrics: JSON | None
    at: datetime

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> JobProgress | None:
        if not document:
            return None
        return cls(
            fraction=document.get("fraction"),
            step=document.get("step"),
            total_steps=document.get("totalSteps"),
            message=document.get("message"),
            metrics=document.get("metrics"),
            at=datetime.fromisoformat(document["at"]),
        )


@strawberry.type(description="A STAGING event: one input being copied into the job's AICN_INPUT_DIR, checksum verified while copying.")
class StagingProgress:
    dataset_name: str
    state: str = strawberry.field(description="COPYING, VERIFIED or FAILED")
    bytes_done: BigInt
    bytes_total: BigInt | None
    transfer_key: strawberry.Private[int]

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> StagingProgress | None:
        if not document:
            return None
        total = document.get("bytesTotal")
        return cls(
            dataset_name=str(document.get("datasetName")),
            state=str(document.get("state")),
            bytes_done=BigInt(int(document.get("bytesDone") or 0)),
            bytes_total=BigInt(int(total)) if total is not None else None,
            transfer_key=int(document.get("transferId") or 0),
        )


@strawberry.type
class ResourceRequest:
    accelerator: str | None
    devices: int | None
    standard_units: float | None
    cpus: int | None
    memory_gb: float | None
    max_duration_minutes: float

    @classmethod
    def from_request(cls, request: Any) -> ResourceRequest:
        return cls(
            accelerator=request.accelerator,
            devices=request.devices,
            standard_units=request.standard_units,
            cpus=request.cpus,
            memory_gb=request.memory_gb,
            max_duration_minutes=request.max_duration_minutes,
        )


@strawberry.type
class PlacementCandidate:
    score: float | None
    chosen: bool
    reason: str | None
    center_key: strawberry.Private[int]

    @strawberry.field
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.services.centers.get(self.center_key)
        return ComputeCenter.from_center(center) if center else None


@strawberry.type
class Placement:
    policy: PlacementPolicy | None
    candidates: list[PlacementCandidate]
    waiting: str | None = strawberry.field(description="Why the job waits in the network queue, while it does.")

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> Placement | None:
        if not document:
            return None
        return cls(
            policy=PlacementPolicy[document["policy"]] if document.get("policy") else None,
            candidates=[
                PlacementCandidate(score=c.get("score"), chosen=c["chosen"], reason=c.get("reason"), center_key=c["centerId"])
                for c in document.get("candidates", [])
            ],
            waiting=document.get("waiting"),
        )


@strawberry.type(description="One event of a job's log; `seq` counts a job's events from 1 without gaps.")
class JobEvent:
    seq: int
    at: datetime
    kind: JobEventKind = strawberry.field(
        description="STATE, PROGRESS, PLACEMENT or USAGE. LOG is never sent: a job's output streams through `jobLogs`, not its event log."
    )
    state: JobState | None
    progress: JobProgress | None
    staging: StagingProgress | None
    message: str | None
    job_key: strawberry.Private[int]

    @property
    def share_tag(self) -> tuple[str, int, int]:
        """Which event this is, for subscribers that share its execution (graph/core/sharing.py)."""
        return ("JobEvent", self.job_key, self.seq)

    @strawberry.field
    async def job(self, info: Info[Context, None]) -> Job:
        job = await info.context.loaders.job.load(self.job_key)
        if job is None:
            raise BadRequest("the job is not visible", "NOT_FOUND")
        return job

    @classmethod
    def from_record(cls, record: EventRecord) -> JobEvent:
        return cls(
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            state=record.state,
            progress=JobProgress.from_document(record.progress) if record.kind == JobEventKind.PROGRESS else None,
            staging=StagingProgress.from_document(record.progress) if record.kind == JobEventKind.STAGING else None,
            message=record.message,
            job_key=record.job_id,
        )


@strawberry.type(description="A unit of work placed on a center.")
class Job(Node):
    id: strawberry.ID
    name: str
    kind: JobKind
    state: JobState
    failure_reason: str | None
    exit_code: int | None
    request: ResourceRequest
    command: list[str]
    environment: JSON | None
    placement: Placement | None
    progress: JobProgress | None = strawberry.field(description="The latest progress report.")
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime = strawberry.field(description="When the job last changed; `jobUpdates(since:)` resumes from it.")
    priority: int = strawberry.field(description="Its place in the network queue's order (higher first; see queuePosition).")
    row: strawberry.Private[JobRow]

    @property
    def share_tag(self) -> tuple[str, int, int]:
        """The job as of its latest event, for `jobUpdates` subscribers that share its execution."""
        return ("Job", self.row.id, self.row.last_seq)

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        return cls(
            id=strawberry.ID(to_global_id("Job", row.id)),
            name=row.name,
            kind=row.kind,
            state=row.state,
            failure_reason=row.failure_reason,
            exit_code=row.exit_code,
            request=ResourceRequest.from_request(row.request),
            command=list(row.command),
            environment=cast(JSON, row.environment),
            placement=Placement.from_document(row.placement),
            progress=JobProgress.from_document(row.progress),
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            updated_at=row.updated_at,
            priority=row.priority,
            row=row,
        )

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")]:
        account = await info.context.loaders.account.load(self.row.owner_id)
        assert account is not None
        return account

    @strawberry.field(description="The center running the job; null while it waits at the network level.")
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        if self.row.center_id is None:
            return None
        center = info.context.services.centers.get(self.row.center_id)
        return ComputeCenter.from_center(center) if center else None

    @strawberry.field(description="On a PEER center: the job's id in the peer's own graph.")
    def remote_id(self, info: Info[Context, None]) -> str | None:
        center = info.context.services.centers.get(self.row.center_id) if self.row.center_id is not None else None
        return self.row.external_id if center is not None and center.kind == "PEER" else None

    @strawberry.field(description="The compute unit the job runs on (asks the center).")
    async def compute_unit(self, info: Info[Context, None]) -> ComputeUnit | None:
        if self.row.center_id is None:
            return None
        units = await info.context.loaders.capacity.load(self.row.center_id)
        accelerator = self.row.request.accelerator
        for unit in units:
            if unit.accelerator.model == accelerator:
                return ComputeUnit.from_info(unit, info.context.services.centers.currency)
        return None

    @strawberry.field
    async def inputs(self, info: Info[Context, None]) -> list[Annotated[Dataset, strawberry.lazy("graph.data.types")]]:
        return await info.context.loaders.inputs.load(self.row.id)

    @strawberry.field(description="The model this job trained, once registered.")
    async def output_model(self, info: Info[Context, None]) -> Annotated[Model, strawberry.lazy("graph.data.types")] | None:
        return await info.context.loaders.trained_model.load(self.row.id)

    @strawberry.field(description="The dataset this job made from its AICN_OUTPUT_DIR (outputDatasetName), once it succeeded.")
    async def output_dataset(self, info: Info[Context, None]) -> Annotated[Dataset, strawberry.lazy("graph.data.types")] | None:
        return await info.context.loaders.produced_dataset.load(self.row.id)

    @strawberry.field(description="The job's events in order; page with `after: <seq>`.")
    async def events(self, info: Info[Context, None], after: int | None = None, first: int | None = None) -> Connection[JobEvent]:
        page = await info.context.services.job_reads.events(self.row, after=max(0, after or 0), first=page_size(first))
        last_seq = self.row.last_seq

        async def count() -> int:
            return last_seq

        return connection_from_page(page, JobEvent.from_record, lambda record: record.seq, count)

    @strawberry.field(description="What the job used and cost; null until a job that ran has ended.")
    async def usage(self, info: Info[Context, None]) -> Annotated[UsageRecord, strawberry.lazy("graph.billing.types")] | None:
        return await info.context.loaders.billing.usage_by_job.load(self.row.id)

    @strawberry.field(
        description="What the job has cost: while it runs, its seconds so far at its quote; once ended, its usage; 0 before it starts."
    )
    async def cost_so_far(self, info: Info[Context, None]) -> Money | None:
        row = self.row
        if row.unit_price is None or row.units_per_device is None:
            return None  # submitted without billing terms
        currency = row.currency or info.context.services.billing.currency
        if row.state in TERMINAL_STATES:
            usage = await info.context.loaders.billing.usage_by_job.load(row.id)
            return Money(amount=usage.amount.amount if usage is not None else ZERO, currency=currency)
        if row.started_at is None or row.request.devices is None:
            return Money(amount=ZERO, currency=currency)
        amount = cost_so_far(
            row.unit_price, row.units_per_device, row.request.devices, row.started_at, datetime.now(UTC), row.request.max_duration_minutes
        )
        return Money(amount=amount, currency=currency)

    @strawberry.field(description="What the job holds of the account's balance until it ends (its most possible cost); null once ended.")
    def hold(self, info: Info[Context, None]) -> Money | None:
        row = self.row
        if row.hold_amount is None or row.state in TERMINAL_STATES:
            return None
        return Money(amount=row.hold_amount, currency=row.currency or info.context.services.billing.currency)

    @strawberry.field(description="Place in the network queue (1 = next), null when not waiting there.")
    async def queue_position(self, info: Info[Context, None]) -> int | None:
        if self.row.center_id is not None or self.row.external_id is not None or self.row.state in TERMINAL_STATES:
            return None
        positions = await info.context.loaders.queue_positions()
        return positions.get(self.row.id)

    @strawberry.field(description="The last lines of the job's output (at most 10000).")
    async def logs(self, info: Info[Context, None], tail_lines: int = 100) -> str | None:
        if not 1 <= tail_lines <= MAX_TAIL_LINES:
            raise BadRequest(f"tailLines must be between 1 and {MAX_TAIL_LINES}")
        return await info.context.services.jobs.logs(self.row, tail_lines)

    @strawberry.field(
        description="At most `maxBytes` (1 MiB at most) of the job's output from byte `offset`; a negative offset reads the last "
        "bytes. Null until the job is at a center."
    )
    async def log_bytes(self, info: Info[Context, None], offset: BigInt, max_bytes: int = 65536) -> LogBytes | None:
        if not 1 <= max_bytes <= MAX_LOG_READ_BYTES:
            raise BadRequest(f"maxBytes must be between 1 and {MAX_LOG_READ_BYTES}")
        chunk = await info.context.services.jobs.read_log(self.row, int(offset), max_bytes)
        if chunk is None:
            return None
        return LogBytes(data=base64.b64encode(chunk.data).decode(), start=BigInt(chunk.start), next_offset=BigInt(chunk.next_offset))


@strawberry.type(description="Bytes of a job's output, base64: what a peer gateway reads to follow a delegated job's output.")
class LogBytes:
    data: str = strawberry.field(description="The bytes, base64-encoded.")
    start: BigInt = strawberry.field(description="The byte of the output `data` starts at (later than asked when older bytes are gone).")
    next_offset: BigInt = strawberry.field(description="Where to read on: start plus the length of the bytes.")


@strawberry.type(description="Lines of a job's output, as `jobLogs` sends them.")
class LogLines:
    lines: list[str] = strawberry.field(
        description="Whole lines, oldest first, without their newline; the gateway's own read `[aicn: ...]`."
    )
    truncated: bool = strawberry.field(
        description="True when something is missing here: a line cut to its first 16 KiB, lines dropped, or output skipped."
    )
    dropped: int = strawberry.field(description="Lines dropped since the previous message because of the rate limit.")
