"""Persisted operations: GraphQL texts by the SHA-256 of their text, shared by every replica."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import UtcDateTime, utcnow


class PersistedOperationRow(Base):
    """One operation text. ``safelisted``: pushed by an admin (`aicn operations push`), with its cost measured then."""

    __tablename__ = "persisted_operations"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cost: Mapped[int | None] = mapped_column(Integer, nullable=True)
    safelisted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


async def find_operation(session: AsyncSession, sha256: str) -> PersistedOperationRow | None:
    return await session.get(PersistedOperationRow, sha256)


async def save_operation(
    session: AsyncSession, *, sha256: str, text: str, name: str | None, cost: int | None, safelisted: bool
) -> PersistedOperationRow:
    """Insert, or upgrade an automatic one to safelisted (the text of a hash never changes)."""
    row = await session.get(PersistedOperationRow, sha256)
    if row is None:
        row = PersistedOperationRow(sha256=sha256, text=text, name=name, cost=cost, safelisted=safelisted)
        session.add(row)
    elif safelisted:
        row.safelisted, row.name, row.cost = True, name, cost
    await session.flush()
    return row


async def list_operations(session: AsyncSession) -> Sequence[PersistedOperationRow]:
    return (await session.scalars(select(PersistedOperationRow).order_by(PersistedOperationRow.name, PersistedOperationRow.sha256))).all()
