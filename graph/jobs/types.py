"""Jobs: the Job node, its events and progress, inputs, and the job list."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter, ComputeUnit
from graph.core.context import Context
from graph.core.relay import Connection, Node, connection_from_page
from graph.core.scalars import JSON
from resolvers.common.errors import BadRequest
from resolvers.common.ids import decode_cursor, int_key, page_size, to_global_id
from resolvers.jobs import states
from resolvers.jobs.ledger import EventRecord
from store import jobs as job_store
from store.paging import Page
from store.tables import JobRow

if TYPE_CHECKING:
    from graph.access.accounts import Account
    from graph.billing.types import UsageRecord
    from graph.data.types import Dataset, Model

MAX_TAIL_LINES = 10_000


# the services' own enums, made GraphQL enums in place: rows and events carry these members as they are
JobKind = states.JobKind
JobState = states.JobState
JobEventKind = states.JobEventKind
strawberry.enum(JobKind)
strawberry.enum(JobState)
strawberry.enum(JobEventKind)


@strawberry.enum
class PlacementPolicy(enum.Enum):
    CHEAPEST = "CHEAPEST"
    EARLIEST_START = "EARLIEST_START"
    DATA_LOCAL = "DATA_LOCAL"


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


@strawberry.type
class ResourceRequest:
    accelerator: str | None
    devices: int | None
    standard_units: float | None
    cpus: int | None
    memory_gb: float | None
    max_duration_minutes: float


@strawberry.type
class PlacementCandidate:
    score: float | None
    chosen: bool
    reason: str | None
    center_key: strawberry.Private[int]

    @strawberry.field
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.runtime.registry.get(self.center_key)
        return ComputeCenter.from_center(center) if center else None


@strawberry.type
class Placement:
    policy: PlacementPolicy | None
    candidates: list[PlacementCandidate]
    waiting: str | None = strawberry.field(description="Why the job waits in the network queue, while it does.")


@strawberry.type(description="One event of a job's log; `seq` counts a job's events from 1 without gaps.")
class JobEvent:
    seq: int
    at: datetime
    kind: JobEventKind
    state: JobState | None
    progress: JobProgress | None
    message: str | None
    job_key: strawberry.Private[int]

    @strawberry.field
    async def job(self, info: Info[Context, None]) -> Job:
        row = await info.context.loaders.job.load(self.job_key)
        if row is None:
            raise BadRequest("the job is not visible", "NOT_FOUND")
        return Job.from_row(row)

    @classmethod
    def from_record(cls, record: EventRecord) -> JobEvent:
        return cls(
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            state=record.state,
            progress=JobProgress.from_document(record.progress) if record.kind == JobEventKind.PROGRESS else None,
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
    row: strawberry.Private[JobRow]

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        request = row.request
        placement = None
        if row.placement:
            placement = Placement(
                policy=PlacementPolicy[row.placement["policy"]] if row.placement.get("policy") else None,
                candidates=[
                    PlacementCandidate(score=c.get("score"), chosen=c["chosen"], reason=c.get("reason"), center_key=c["centerId"])
                    for c in row.placement.get("candidates", [])
                ],
                waiting=row.placement.get("waiting"),
            )
        return cls(
            id=strawberry.ID(to_global_id("Job", row.id)),
            name=row.name,
            kind=row.kind,
            state=row.state,
            failure_reason=row.failure_reason,
            exit_code=row.exit_code,
            request=ResourceRequest(
                accelerator=request.accelerator,
                devices=request.devices,
                standard_units=request.standard_units,
                cpus=request.cpus,
                memory_gb=request.memory_gb,
                max_duration_minutes=request.max_duration_minutes,
            ),
            command=list(row.command),
            environment=cast(JSON, row.environment),
            placement=placement,
            progress=JobProgress.from_document(row.progress),
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            row=row,
        )

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")]:
        from graph.access.accounts import Account

        account = await info.context.loaders.account.load(self.row.owner_id)
        assert account is not None
        return Account.from_row(account)

    @strawberry.field(description="The center running the job; null while it waits at the network level.")
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        if self.row.center_id is None:
            return None
        center = info.context.runtime.registry.get(self.row.center_id)
        return ComputeCenter.from_center(center) if center else None

    @strawberry.field(description="The compute unit the job runs on (asks the center).")
    async def compute_unit(self, info: Info[Context, None]) -> ComputeUnit | None:
        if self.row.center_id is None:
            return None
        units = await info.context.loaders.capacity.load(self.row.center_id)
        accelerator = self.row.request.accelerator
        for unit in units:
            if unit.accelerator.model == accelerator:
                return ComputeUnit.from_info(unit, info.context.runtime.registry.currency)
        return None

    @strawberry.field
    async def inputs(self, info: Info[Context, None]) -> list[Annotated[Dataset, strawberry.lazy("graph.data.types")]]:
        from graph.data.types import Dataset

        return [Dataset.from_row(row) for row in await info.context.loaders.inputs.load(self.row.id)]

    @strawberry.field(description="The model this job trained, once registered.")
    async def output_model(self, info: Info[Context, None]) -> Annotated[Model, strawberry.lazy("graph.data.types")] | None:
        from graph.data.types import Model

        row = await info.context.loaders.trained_model.load(self.row.id)
        return Model.from_row(row) if row else None

    @strawberry.field(description="The job's events in order; page with `after: <seq>`.")
    async def events(self, info: Info[Context, None], after: int | None = None, first: int | None = None) -> Connection[JobEvent]:
        size = page_size(first)
        start = max(0, after or 0)
        async with info.context.runtime.db.read() as session:
            rows = await job_store.events_after(session, self.row.id, start, size + 1)
        page = Page(rows=rows[:size], has_next=len(rows) > size, has_previous=start > 0)
        owner = self.row.owner_id
        last_seq = self.row.last_seq

        async def count() -> int:
            return last_seq

        connection = connection_from_page(
            page, lambda row: JobEvent.from_record(EventRecord.from_row(row, owner)), lambda row: row.seq, count
        )
        return connection

    @strawberry.field(description="What the job used and cost; null until a job that ran has ended.")
    async def usage(self, info: Info[Context, None]) -> Annotated[UsageRecord, strawberry.lazy("graph.billing.types")] | None:
        from graph.billing.types import UsageRecord

        row = await info.context.loaders.billing.usage_by_job.load(self.row.id)
        return UsageRecord.from_row(row) if row else None

    @strawberry.field(description="The last lines of the job's output (at most 10000).")
    async def logs(self, info: Info[Context, None], tail_lines: int = 100) -> str | None:
        if not 1 <= tail_lines <= MAX_TAIL_LINES:
            raise BadRequest(f"tailLines must be between 1 and {MAX_TAIL_LINES}")
        return await info.context.runtime.jobs.logs(self.row, tail_lines)


@strawberry.input
class JobFilter:
    states: list[JobState] | None = None
    center_ids: list[strawberry.ID] | None = None
    kinds: list[JobKind] | None = None
    name_contains: str | None = None

    def to_query(self, owner_id: int | None) -> job_store.JobQuery:
        center_keys = tuple(key for key in (int_key(i, "ComputeCenter") for i in self.center_ids or []) if key is not None)
        if self.center_ids and not center_keys:
            center_keys = (-1,)  # ids that name no center match no job
        return job_store.JobQuery(
            owner_id=owner_id,
            states=tuple(self.states or []),
            center_ids=center_keys,
            kinds=tuple(self.kinds or []),
            name_contains=self.name_contains or None,
        )

    def accepts(self, job: JobRow) -> bool:
        query = self.to_query(None)
        return (
            (not query.states or job.state in query.states)
            and (not query.center_ids or job.center_id in query.center_ids)
            and (not query.kinds or job.kind in query.kinds)
            and (not query.name_contains or query.name_contains.lower() in job.name.lower())
        )


async def list_jobs(
    info: Info[Context, None],
    *,
    first: int | None,
    after: str | None,
    filter: JobFilter | None,
    center_key: int | None = None,
    owner_key: int | None = None,
    dataset_key: int | None = None,
) -> Connection[Job]:
    size = page_size(first)
    cursor = decode_cursor(after)
    viewer = info.context.viewer
    base = (filter or JobFilter()).to_query(viewer.scope)
    owner = base.owner_id
    if owner_key is not None:
        owner = owner_key if owner in (None, owner_key) else -1  # another account's jobs: none
    query = job_store.JobQuery(
        owner_id=owner,
        states=base.states,
        center_ids=(center_key,) if center_key is not None else base.center_ids,
        kinds=base.kinds,
        name_contains=base.name_contains,
        input_dataset_id=dataset_key,
    )
    db = info.context.runtime.db
    async with db.read() as session:
        page = await job_store.jobs_page(session, query, first=size, after=cursor)

    async def count() -> int:
        async with db.read() as session:
            return await job_store.count_jobs(session, query)

    for row in page.rows:  # prime the loader: linked fields of these jobs need no lookup
        info.context.loaders.job.prime(row.id, row)
    return connection_from_page(page, Job.from_row, lambda row: row.id, count)
