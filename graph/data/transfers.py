"""Transfers: a dataset being copied to a center, with its progress and the checksum it verified."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry
from strawberry.types import Info

from graph.centers.types import ComputeCenter
from graph.core.context import Context
from graph.core.relay import Node
from graph.core.scalars import BigInt
from graph.data.types import Dataset
from resolvers.common.ids import to_global_id
from resolvers.data.records import TransferRow


@strawberry.enum(description="QUEUED, then COPYING; VERIFIED once the copy's checksum matched, or FAILED (see failureCode).")
class TransferState(enum.Enum):
    QUEUED = "QUEUED"
    COPYING = "COPYING"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"


@strawberry.type(description="A dataset being copied to a center (replicateDataset), tracked until verified or failed.")
class Transfer(Node):
    id: strawberry.ID
    state: TransferState
    bytes_done: BigInt
    bytes_total: BigInt | None
    checksum: str | None = strawberry.field(description="Expected while copying; the one the copy was verified with once VERIFIED.")
    attempts: int = strawberry.field(description="Copies begun (a gateway restart begins the copy again).")
    failure_code: str | None
    failure_reason: str | None
    source_uri: str
    destination_uri: str
    created_at: datetime
    finished_at: datetime | None
    row: strawberry.Private[TransferRow]

    @classmethod
    def from_row(cls, row: TransferRow) -> Transfer:
        return cls(
            id=strawberry.ID(to_global_id("Transfer", row.id)),
            state=TransferState(row.state),
            bytes_done=BigInt(row.bytes_done),
            bytes_total=BigInt(row.bytes_total) if row.bytes_total is not None else None,
            checksum=row.checksum,
            attempts=row.attempts,
            failure_code=row.failure_code,
            failure_reason=row.failure_reason,
            source_uri=row.source_uri,
            destination_uri=row.destination_uri,
            created_at=row.created_at,
            finished_at=row.finished_at,
            row=row,
        )

    @strawberry.field
    def center(self, info: Info[Context, None]) -> ComputeCenter | None:
        center = info.context.services.centers.get(self.row.center_id)
        return ComputeCenter.from_center(center) if center else None

    @strawberry.field
    async def dataset(self, info: Info[Context, None]) -> Dataset | None:
        return await info.context.loaders.dataset.load(self.row.dataset_id)
