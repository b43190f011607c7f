"""The jobs' inputs: a resource request, a submission, a cancellation, a filter."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import strawberry

from graph.core.scalars import JSON
from graph.jobs.enums import JobKind, JobState, PlacementPolicy
from resolvers.common.ids import int_key
from resolvers.jobs.records import JobOrder as JobOrderKey
from resolvers.jobs.records import JobQuery, JobRow
from resolvers.jobs.resources import ResourceRequest


@strawberry.input
class ResourceRequestInput:
    max_duration_minutes: float = strawberry.field(
        description="Wall-clock limit; the job is stopped when it runs longer. May be fractional."
    )
    accelerator: str | None = strawberry.field(
        default=None, description="A catalog model. Absent: any model for `standardUnits`, cpu-core for `devices` or `cpus`."
    )
    devices: int | None = None
    standard_units: float | None = None
    cpus: int | None = None
    memory_gb: float | None = None
    max_price_per_hour: Decimal | None = strawberry.field(
        default=None, description="Refuse offers dearer than this per hour (OVER_PRICE_CAP); at most 6 decimal places."
    )
    center_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these centers (others are CENTER_NOT_SELECTED); an unknown id is CENTER_NOT_FOUND."
    )
    exclude_center_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Never these centers (CENTER_EXCLUDED); an unknown id is CENTER_NOT_FOUND."
    )

    def to_request(self) -> ResourceRequest:
        return ResourceRequest(
            max_duration_minutes=self.max_duration_minutes,
            accelerator=self.accelerator,
            devices=self.devices,
            standard_units=self.standard_units,
            cpus=self.cpus,
            memory_gb=self.memory_gb,
            max_price_per_hour=self.max_price_per_hour,
            center_ids=_center_keys(self.center_ids) if self.center_ids is not None else None,
            exclude_center_ids=_center_keys(self.exclude_center_ids or []),
        )


def _center_keys(ids: list[strawberry.ID]) -> tuple[int, ...]:
    """Center keys; an id that is not a center's becomes -1, which validation reports as CENTER_NOT_FOUND."""
    return tuple(int_key(global_id, "ComputeCenter") or -1 for global_id in ids)


@strawberry.input
class SubmitJobInput:
    name: str
    command: list[str] = strawberry.field(description="The program and its arguments; run as given, never through a shell.")
    request: ResourceRequestInput
    kind: JobKind = JobKind.BATCH
    environment: JSON | None = None
    center_id: strawberry.ID | None = strawberry.field(default=None, description="Absent: the network places the job by `policy`.")
    policy: PlacementPolicy = PlacementPolicy.CHEAPEST
    input_dataset_ids: list[strawberry.ID] | None = None
    output_model_name: str | None = strawberry.field(
        default=None, description="Keep what the job writes to AICN_OUTPUT_DIR as version job-<id> of this model, if it succeeds."
    )
    output_dataset_name: str | None = strawberry.field(
        default=None, description="Keep what the job writes to AICN_OUTPUT_DIR as version job-<id> of this dataset, if it succeeds."
    )
    idempotency_key: str | None = strawberry.field(default=None, description="The same key twice makes one job.")
    priority: int = strawberry.field(
        default=0, description="-100 to 100; orders the network queue: higher first, aging lifts a waiting job (see the README)."
    )
    client_mutation_id: str | None = None


@strawberry.input
class CancelJobInput:
    job_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.input
class JobFilter:
    states: list[JobState] | None = None
    center_ids: list[strawberry.ID] | None = None
    kinds: list[JobKind] | None = None
    name_contains: str | None = None
    submitted_after: datetime | None = strawberry.field(default=None, description="Submitted at or after this time.")
    submitted_before: datetime | None = strawberry.field(default=None, description="Submitted before this time.")

    def to_query(self, owner_id: int | None) -> JobQuery:
        center_keys = tuple(key for key in (int_key(i, "ComputeCenter") for i in self.center_ids or []) if key is not None)
        if self.center_ids and not center_keys:
            center_keys = (-1,)  # ids that name no center match no job
        return JobQuery(
            owner_id=owner_id,
            states=tuple(self.states or []),
            center_ids=center_keys,
            kinds=tuple(self.kinds or []),
            name_contains=self.name_contains or None,
            submitted_after=self.submitted_after,
            submitted_before=self.submitted_before,
        )

    def accepts(self, job: JobRow) -> bool:
        query = self.to_query(None)
        return (
            (not query.states or job.state in query.states)
            and (not query.center_ids or job.center_id in query.center_ids)
            and (not query.kinds or job.kind in query.kinds)
            and (not query.name_contains or query.name_contains.lower() in job.name.lower())
            and (query.submitted_after is None or job.submitted_at >= query.submitted_after)
            and (query.submitted_before is None or job.submitted_at < query.submitted_before)
        )


@strawberry.enum(description="How a list of jobs is sorted; each order pages by its own keyset.")
class JobOrder(enum.Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    COST = strawberry.enum_value("COST", description="What the usage charged, dearest first; jobs not metered yet count as 0.")

    def key(self) -> JobOrderKey:
        return JobOrderKey(self.value)
