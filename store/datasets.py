"""Datasets, their replicas, and models with their lineage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.paging import Page, count_rows, keyset_page
from store.tables import DatasetReplicaRow, DatasetRow, ModelReplicaRow, ModelRow

#: the replica states ``replicas`` lists: verified copies and copies being made
LISTED_REPLICA_STATES = ("VERIFIED", "COPYING", "AVAILABLE")
_Replica = TypeVar("_Replica", DatasetReplicaRow, ModelReplicaRow)


def _owned(statement: Select[Any], column: Any, owner_id: int | None) -> Select[Any]:
    return statement if owner_id is None else statement.where(column == owner_id)


async def datasets_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None = None) -> dict[int, DatasetRow]:
    statement = _owned(select(DatasetRow).where(DatasetRow.id.in_(ids)), DatasetRow.owner_id, owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def datasets_page(session: AsyncSession, owner_id: int | None, *, first: int, after: int | None) -> Page[DatasetRow]:
    return await keyset_page(session, _owned(select(DatasetRow), DatasetRow.owner_id, owner_id), DatasetRow.id, first=first, after=after)


async def count_datasets(session: AsyncSession, owner_id: int | None) -> int:
    return await count_rows(session, _owned(select(DatasetRow), DatasetRow.owner_id, owner_id))


async def find_dataset(session: AsyncSession, owner_id: int, name: str, version: str) -> DatasetRow | None:
    return await session.scalar(
        select(DatasetRow).where(DatasetRow.owner_id == owner_id, DatasetRow.name == name, DatasetRow.version == version)
    )


async def replicas_by_datasets(session: AsyncSession, dataset_ids: Sequence[int]) -> dict[int, list[DatasetReplicaRow]]:
    """Verified replicas and those being copied (a claimed, unverified copy is not listed)."""
    return await _listed_replicas(session, DatasetReplicaRow, DatasetReplicaRow.dataset_id, dataset_ids)


async def replicas_by_models(session: AsyncSession, model_ids: Sequence[int]) -> dict[int, list[ModelReplicaRow]]:
    return await _listed_replicas(session, ModelReplicaRow, ModelReplicaRow.model_id, model_ids)


async def _listed_replicas(session: AsyncSession, table: type[_Replica], key: Any, ids: Sequence[int]) -> dict[int, list[_Replica]]:
    grouped: dict[int, list[_Replica]] = {item: [] for item in ids}
    rows = await session.scalars(select(table).where(key.in_(ids), table.state.in_(LISTED_REPLICA_STATES)).order_by(table.id))
    for row in rows:
        grouped[getattr(row, key.key)].append(row)
    return grouped


async def datasets_by_producers(session: AsyncSession, job_ids: Sequence[int], owner_id: int | None = None) -> dict[int, DatasetRow]:
    """The newest dataset each job produced (of ``owner_id``'s datasets, when given)."""
    statement = _owned(select(DatasetRow).where(DatasetRow.produced_by_job_id.in_(job_ids)), DatasetRow.owner_id, owner_id)
    rows = await session.scalars(statement.order_by(DatasetRow.id))
    return {row.produced_by_job_id: row for row in rows if row.produced_by_job_id is not None}


async def models_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None = None) -> dict[int, ModelRow]:
    statement = _owned(select(ModelRow).where(ModelRow.id.in_(ids)), ModelRow.owner_id, owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def models_page(session: AsyncSession, owner_id: int | None, *, first: int, after: int | None) -> Page[ModelRow]:
    return await keyset_page(session, _owned(select(ModelRow), ModelRow.owner_id, owner_id), ModelRow.id, first=first, after=after)


async def count_models(session: AsyncSession, owner_id: int | None) -> int:
    return await count_rows(session, _owned(select(ModelRow), ModelRow.owner_id, owner_id))


async def find_model(session: AsyncSession, owner_id: int, name: str, version: str) -> ModelRow | None:
    return await session.scalar(select(ModelRow).where(ModelRow.owner_id == owner_id, ModelRow.name == name, ModelRow.version == version))


async def models_by_training_jobs(session: AsyncSession, job_ids: Sequence[int], owner_id: int | None = None) -> dict[int, ModelRow]:
    """The newest model each job trained (of ``owner_id``'s models, when given)."""
    statement = _owned(select(ModelRow).where(ModelRow.trained_by_job_id.in_(job_ids)), ModelRow.owner_id, owner_id)
    rows = await session.scalars(statement.order_by(ModelRow.id))
    return {row.trained_by_job_id: row for row in rows if row.trained_by_job_id is not None}
