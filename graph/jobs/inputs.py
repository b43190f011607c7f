"""The jobs' inputs: a resource request, a submission, a cancellation, a filter."""

from __future__ import annotations

import strawberry

from graph.core.scalars import JSON
from graph.jobs.enums import JobKind, JobState, PlacementPolicy
from resolvers.common.ids import int_key
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

    def to_request(self) -> ResourceRequest:
        return ResourceRequest(
            max_duration_minutes=self.max_duration_minutes,
            accelerator=self.accelerator,
            devices=self.devices,
            standard_units=self.standard_units,
            cpus=self.cpus,
            memory_gb=self.memory_gb,
        )


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
        )

    def accepts(self, job: JobRow) -> bool:
        query = self.to_query(None)
        return (
            (not query.states or job.state in query.states)
            and (not query.center_ids or job.center_id in query.center_ids)
            and (not query.kinds or job.kind in query.kinds)
            and (not query.name_contains or query.name_contains.lower() in job.name.lower())
        )
