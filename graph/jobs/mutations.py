"""Mutations: one `input`, a payload with the result and `userErrors`."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.scalars import JSON, BigInt
from graph.data.types import Dataset, Model
from graph.jobs.types import Job, JobKind, PlacementPolicy
from resolvers.common.errors import UserErrorData
from resolvers.data.service import DatasetRequest, ModelRequest
from resolvers.jobs.resources import ResourceRequest
from resolvers.jobs.service import SubmitRequest


@strawberry.type(description="An expected failure: nothing was changed. `code` is stable; `field` is the input path.")
class UserError:
    field: list[str] | None
    message: str
    code: str

    @classmethod
    def from_data(cls, error: UserErrorData) -> UserError:
        return cls(field=list(error.field) or None, message=error.message, code=error.code)


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
    output_model_name: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description="The same key twice makes one job.")
    client_mutation_id: str | None = None


@strawberry.type
class SubmitJobPayload:
    job: Job | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class CancelJobInput:
    job_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class CancelJobPayload:
    job: Job | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input(description="Where a center holds a copy of the dataset (used by DATA_LOCAL placement).")
class DatasetReplicaInput:
    center_id: strawberry.ID
    uri: str


@strawberry.input
class RegisterDatasetInput:
    name: str
    uri: str
    version: str | None = None
    format: str | None = None
    size_bytes: BigInt | None = None
    checksum: str | None = strawberry.field(default=None, description='"sha256:<hex>"')
    replicas: list[DatasetReplicaInput] | None = None
    client_mutation_id: str | None = None


@strawberry.type
class RegisterDatasetPayload:
    dataset: Dataset | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class RegisterModelInput:
    name: str
    uri: str
    version: str | None = None
    framework: str | None = None
    trained_by_job_id: strawberry.ID | None = None
    client_mutation_id: str | None = None


@strawberry.type
class RegisterModelPayload:
    model: Model | None
    user_errors: list[UserError]
    client_mutation_id: str | None


def _errors(errors: list[UserErrorData]) -> list[UserError]:
    return [UserError.from_data(error) for error in errors]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Submit a job to a named center, or let the network place it.")
    async def submit_job(self, info: Info[Context, None], input: SubmitJobInput) -> SubmitJobPayload:
        resources = input.request
        request = SubmitRequest(
            name=input.name,
            command=list(input.command),
            request=ResourceRequest(
                max_duration_minutes=resources.max_duration_minutes,
                accelerator=resources.accelerator,
                devices=resources.devices,
                standard_units=resources.standard_units,
                cpus=resources.cpus,
                memory_gb=resources.memory_gb,
            ),
            kind=input.kind,
            environment=input.environment,
            center_id=input.center_id,
            policy=input.policy.value,
            input_dataset_ids=list(input.input_dataset_ids or []),
            output_model_name=input.output_model_name,
            idempotency_key=input.idempotency_key,
        )
        outcome = await info.context.runtime.jobs.submit(info.context.viewer, request)
        return SubmitJobPayload(
            job=Job.from_row(outcome.job) if outcome.job else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation(description="Cancel a job; it reaches CANCELLED once its center has stopped it.")
    async def cancel_job(self, info: Info[Context, None], input: CancelJobInput) -> CancelJobPayload:
        outcome = await info.context.runtime.jobs.cancel(info.context.viewer, input.job_id)
        return CancelJobPayload(
            job=Job.from_row(outcome.job) if outcome.job else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation
    async def register_dataset(self, info: Info[Context, None], input: RegisterDatasetInput) -> RegisterDatasetPayload:
        outcome = await info.context.runtime.data.register_dataset(
            info.context.viewer,
            DatasetRequest(
                name=input.name,
                uri=input.uri,
                version=input.version,
                format=input.format,
                size_bytes=input.size_bytes,
                checksum=input.checksum,
                replicas=[(replica.center_id, replica.uri) for replica in input.replicas or []],
            ),
        )
        return RegisterDatasetPayload(
            dataset=Dataset.from_row(outcome.dataset) if outcome.dataset else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation
    async def register_model(self, info: Info[Context, None], input: RegisterModelInput) -> RegisterModelPayload:
        outcome = await info.context.runtime.data.register_model(
            info.context.viewer,
            ModelRequest(
                name=input.name,
                uri=input.uri,
                version=input.version,
                framework=input.framework,
                trained_by_job_id=input.trained_by_job_id,
            ),
        )
        return RegisterModelPayload(
            model=Model.from_row(outcome.model) if outcome.model else None,
            user_errors=_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )
