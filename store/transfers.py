"""Transfers (copies of datasets to centers) and the replica rows they make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.paging import Page, count_rows, keyset_page
from store.tables import DatasetReplicaRow, DatasetRow, ModelReplicaRow, ModelRow, TransferRow
from store.types import utcnow

#: a transfer still to finish: a gateway that starts finds these and copies them again
OPEN_STATES = ("QUEUED", "COPYING")


async def transfers_by_ids(session: AsyncSession, ids: Sequence[int], owner_id: int | None = None) -> dict[int, TransferRow]:
    statement = select(TransferRow).where(TransferRow.id.in_(ids))
    if owner_id is not None:
        statement = statement.where(TransferRow.owner_id == owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def open_transfers(session: AsyncSession) -> list[TransferRow]:
    return list(await session.scalars(select(TransferRow).where(TransferRow.state.in_(OPEN_STATES)).order_by(TransferRow.id)))


async def transfers_page(session: AsyncSession, owner_id: int | None, *, first: int, after: int | None) -> Page[TransferRow]:
    return await keyset_page(session, _owned(owner_id), TransferRow.id, first=first, after=after)


async def count_transfers(session: AsyncSession, owner_id: int | None) -> int:
    return await count_rows(session, _owned(owner_id))


def _owned(owner_id: int | None) -> Any:
    statement = select(TransferRow).where(TransferRow.job_id.is_(None))
    return statement if owner_id is None else statement.where(TransferRow.owner_id == owner_id)


async def set_progress(session: AsyncSession, transfer_id: int, **columns: Any) -> None:
    await session.execute(update(TransferRow).where(TransferRow.id == transfer_id).values(updated_at=utcnow(), **columns))


async def replica_of(session: AsyncSession, dataset_id: int, center_id: int) -> DatasetReplicaRow | None:
    return await session.scalar(
        select(DatasetReplicaRow).where(DatasetReplicaRow.dataset_id == dataset_id, DatasetReplicaRow.center_id == center_id)
    )


async def verified_replicas(session: AsyncSession, dataset_id: int) -> list[DatasetReplicaRow]:
    rows = await session.scalars(
        select(DatasetReplicaRow)
        .where(DatasetReplicaRow.dataset_id == dataset_id, DatasetReplicaRow.state == "VERIFIED")
        .order_by(DatasetReplicaRow.id)
    )
    return list(rows)


async def drop_replica(session: AsyncSession, dataset_id: int, center_id: int) -> None:
    await session.execute(
        delete(DatasetReplicaRow).where(DatasetReplicaRow.dataset_id == dataset_id, DatasetReplicaRow.center_id == center_id)
    )


async def stored_bytes(session: AsyncSession, owner_ids: Sequence[int]) -> dict[int, int]:
    """Bytes of every verified or in-flight copy of each account's datasets and models, and of its uploads."""
    totals = {owner_id: 0 for owner_id in owner_ids}
    for table, replica, key in (
        (DatasetRow, DatasetReplicaRow, DatasetReplicaRow.dataset_id),
        (ModelRow, ModelReplicaRow, ModelReplicaRow.model_id),
    ):
        rows = await session.execute(
            select(table.owner_id, func.coalesce(func.sum(table.size_bytes), 0))
            .join(replica, key == table.id)
            .where(table.owner_id.in_(owner_ids), replica.state.in_(("VERIFIED", "COPYING")))
            .group_by(table.owner_id)
        )
        for owner_id, total in rows:
            totals[owner_id] += int(total or 0)
        kept = await session.execute(  # the gateway's own artifact store holds uploads
            select(table.owner_id, func.coalesce(func.sum(table.size_bytes), 0))
            .where(table.owner_id.in_(owner_ids), table.stored_at.is_not(None))
            .group_by(table.owner_id)
        )
        for owner_id, total in kept:
            totals[owner_id] += int(total or 0)
    return totals


async def verified_copies(session: AsyncSession, owner_id: int) -> list[tuple[int, Any]]:
    """(bytes, verified at) of each verified copy the account keeps (what storage is metered on)."""
    found: list[tuple[int, Any]] = []
    for table, replica, key in (
        (DatasetRow, DatasetReplicaRow, DatasetReplicaRow.dataset_id),
        (ModelRow, ModelReplicaRow, ModelReplicaRow.model_id),
    ):
        rows = await session.execute(
            select(table.size_bytes, replica.verified_at)
            .join(replica, key == table.id)
            .where(table.owner_id == owner_id, replica.state == "VERIFIED", replica.verified_at.is_not(None))
        )
        found.extend((int(size or 0), at) for size, at in rows)
        stored = await session.execute(
            select(table.size_bytes, table.stored_at).where(table.owner_id == owner_id, table.stored_at.is_not(None))
        )
        found.extend((int(size or 0), at) for size, at in stored)
    return found


async def center_bytes(session: AsyncSession, center_id: int) -> int:
    """Bytes of the verified and in-flight dataset copies a center holds."""
    total = await session.scalar(
        select(func.coalesce(func.sum(DatasetRow.size_bytes), 0))
        .join(DatasetReplicaRow, DatasetReplicaRow.dataset_id == DatasetRow.id)
        .where(DatasetReplicaRow.center_id == center_id, DatasetReplicaRow.state.in_(("VERIFIED", "COPYING")))
    )
    return int(total or 0)
