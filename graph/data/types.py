"""Datasets and models, linked to the jobs that use and make them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter
from graph.core.context import Context
from graph.core.relay import Connection, Node
from graph.core.scalars import BigInt
from graph.jobs.lists import list_jobs
from resolvers.common.ids import to_global_id
from resolvers.data.records import DatasetRow, ModelRow

if TYPE_CHECKING:
    from graph.access.accounts import Account
    from graph.jobs.types import Job
    from graph.services.types import InferenceService


@strawberry.type(description="A copy of a dataset at a center: VERIFIED against its checksum, or COPYING (a transfer in flight).")
class DatasetReplica:
    uri: str
    state: str
    center_key: strawberry.Private[int]

    @strawberry.field
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.services.centers.get(self.center_key)
        return ComputeCenter.from_center(center) if center else None


@strawberry.type(description="A verified copy of a model version at a center.")
class ModelReplica(DatasetReplica):
    pass


async def _owner(info: Info[Context, None], owner_id: int) -> Account:
    account = await info.context.loaders.account.load(owner_id)
    assert account is not None
    return account


@strawberry.type(description="A registered dataset: where it is, what it holds, and which jobs used it.")
class Dataset(Node):
    id: strawberry.ID
    name: str
    version: str
    format: str | None
    size_bytes: BigInt | None
    checksum: str | None
    uri: str
    created_at: datetime
    row: strawberry.Private[DatasetRow]

    @classmethod
    def from_row(cls, row: DatasetRow) -> Dataset:
        return cls(
            id=strawberry.ID(to_global_id("Dataset", row.id)),
            name=row.name,
            version=row.version,
            format=row.format,
            size_bytes=BigInt(row.size_bytes) if row.size_bytes is not None else None,
            checksum=row.checksum,
            uri=row.uri,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")]:
        return await _owner(info, self.row.owner_id)

    @strawberry.field
    async def replicas(self, info: Info[Context, None]) -> list[DatasetReplica]:
        rows = await info.context.loaders.replicas.load(self.row.id)
        return [DatasetReplica(uri=row.uri, state=row.state, center_key=row.center_id) for row in rows]

    @strawberry.field(description="The job that wrote this dataset to its AICN_OUTPUT_DIR (null: registered by hand).")
    async def produced_by(self, info: Info[Context, None]) -> Annotated[Job, strawberry.lazy("graph.jobs.types")] | None:
        if self.row.produced_by_job_id is None:
            return None
        return await info.context.loaders.job.load(self.row.produced_by_job_id)

    @strawberry.field(description="Jobs that took this dataset as an input, newest first.")
    async def used_by(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Job, strawberry.lazy("graph.jobs.types")]]:
        return await list_jobs(info, first=first, after=after, filter=None, dataset_key=self.row.id)


@strawberry.type(description="A registered model, with the job and datasets it was trained from.")
class Model(Node):
    id: strawberry.ID
    name: str
    version: str
    framework: str | None
    size_bytes: BigInt | None
    checksum: str | None
    uri: str
    created_at: datetime
    row: strawberry.Private[ModelRow]

    @classmethod
    def from_row(cls, row: ModelRow) -> Model:
        return cls(
            id=strawberry.ID(to_global_id("Model", row.id)),
            name=row.name,
            version=row.version,
            framework=row.framework,
            size_bytes=BigInt(row.size_bytes) if row.size_bytes is not None else None,
            checksum=row.checksum,
            uri=row.uri,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def owner(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")]:
        return await _owner(info, self.row.owner_id)

    @strawberry.field(description="Where copies of this model version are kept.")
    async def replicas(self, info: Info[Context, None]) -> list[ModelReplica]:
        rows = await info.context.loaders.model_replicas.load(self.row.id)
        return [ModelReplica(uri=row.uri, state=row.state, center_key=row.center_id) for row in rows]

    @strawberry.field
    async def trained_by(self, info: Info[Context, None]) -> Annotated[Job, strawberry.lazy("graph.jobs.types")] | None:
        if self.row.trained_by_job_id is None:
            return None
        return await info.context.loaders.job.load(self.row.trained_by_job_id)

    @strawberry.field(description="How the model is served when deployModel gives no command: an argv with {port} and {model_dir}.")
    def serving_command(self) -> list[str] | None:
        return list(self.row.serving_command) if self.row.serving_command else None

    @strawberry.field(description="The services serving this model, newest first.")
    async def services(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[InferenceService, strawberry.lazy("graph.services.types")]]:
        return await info.context.loaders.model_services(info, first=first, after=after, model_key=self.row.id)

    @strawberry.field(description="The datasets the training job took as inputs.")
    async def trained_on(self, info: Info[Context, None]) -> list[Dataset]:
        if self.row.trained_by_job_id is None:
            return []
        return await info.context.loaders.inputs.load(self.row.trained_by_job_id)
