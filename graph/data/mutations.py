"""The data mutations: register a dataset (with its replicas) or a model."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.core.context import Context
from graph.core.payloads import UserError, user_errors
from graph.core.scalars import BigInt
from graph.data.transfers import Transfer
from graph.data.types import Dataset, Model
from resolvers.data.service import DatasetRequest, ModelRequest


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
    serving_command: list[str] | None = strawberry.field(
        default=None, description="How to serve the model: an argv with {port} and {model_dir} filled in by the gateway."
    )
    client_mutation_id: str | None = None


@strawberry.type
class RegisterModelPayload:
    model: Model | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.input
class ReplicateDatasetInput:
    dataset_id: strawberry.ID
    center_id: strawberry.ID
    client_mutation_id: str | None = None


@strawberry.type
class ReplicateDatasetPayload:
    transfer: Transfer | None
    user_errors: list[UserError]
    client_mutation_id: str | None


@strawberry.type
class DataMutation:
    @strawberry.mutation(
        description="Copy a dataset to a center as a tracked transfer; the replica is listed VERIFIED once its checksum matched."
    )
    async def replicate_dataset(self, info: Info[Context, None], input: ReplicateDatasetInput) -> ReplicateDatasetPayload:
        transfers = info.context.services.transfers
        assert transfers is not None
        outcome = await transfers.replicate(info.context.viewer, input.dataset_id, input.center_id)
        return ReplicateDatasetPayload(
            transfer=Transfer.from_row(outcome.transfer) if outcome.transfer else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation
    async def register_dataset(self, info: Info[Context, None], input: RegisterDatasetInput) -> RegisterDatasetPayload:
        outcome = await info.context.services.data.register_dataset(
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
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )

    @strawberry.mutation
    async def register_model(self, info: Info[Context, None], input: RegisterModelInput) -> RegisterModelPayload:
        outcome = await info.context.services.data.register_model(
            info.context.viewer,
            ModelRequest(
                name=input.name,
                uri=input.uri,
                version=input.version,
                framework=input.framework,
                trained_by_job_id=input.trained_by_job_id,
                serving_command=list(input.serving_command) if input.serving_command is not None else None,
            ),
        )
        return RegisterModelPayload(
            model=Model.from_row(outcome.model) if outcome.model else None,
            user_errors=user_errors(outcome.errors),
            client_mutation_id=input.client_mutation_id,
        )
