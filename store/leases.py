"""Leases: which gateway replica runs each singleton background loop (a center's reconciler,
the network queue, the service controller, transfer recovery).

A lease row names its holder and an epoch that grows by one each time the lease changes hands
(the fencing token): a write fenced by ``still_held`` commits only while the epoch it was
granted is current. A holder renews before ``expires_at``; a holder that dies (SIGKILL) stops
renewing and another replica takes the lease once it has expired.

Each replica also keeps a presence row of its own (``replica:<holder>``, renewed with its leases
in the same transaction): the live replicas are those whose presence has not expired, and the
leases are spread over them (``resolvers.common.leases``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Integer, String, and_, delete, false, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from store.tables import Base
from store.types import UtcDateTime

#: the name of a replica's presence row is this prefix and its holder id
PRESENCE = "replica:"


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime)


#: leases renewed or released in one statement: SQLite caps the bound values of a statement
LEASES_PER_STATEMENT = 400


def _at_epochs(held: dict[str, int]) -> Iterator[ColumnElement[bool]]:
    """For each slice of ``held``: the condition "this lease, at the epoch it was granted"."""
    pairs = list(held.items())
    for start in range(0, len(pairs), LEASES_PER_STATEMENT):
        yield tuple_(LeaseRow.name, LeaseRow.epoch).in_(pairs[start : start + LEASES_PER_STATEMENT])


async def renew(session: AsyncSession, holder: str, held: dict[str, int], now: datetime, until: datetime) -> None:
    """Push back the expiry of the leases ``holder`` holds at the epochs it was granted, and of its
    presence row: one statement for all of them (a replica reconciling 50 centers renews 54 leases
    every heartbeat). A presence row that is not there yet is made by :func:`announce`."""
    presence = LeaseRow.name == PRESENCE + holder
    slices = list(_at_epochs(held)) or [false()]
    for index, at_epochs in enumerate(slices):
        renewed = and_(at_epochs, LeaseRow.expires_at >= now)
        which = or_(renewed, presence) if index == 0 else renewed
        await session.execute(update(LeaseRow).where(LeaseRow.holder == holder, which).values(expires_at=until))


async def take_expired(
    session: AsyncSession, holder: str, names: Sequence[str], now: datetime, until: datetime, dead: Iterable[str] = ()
) -> None:
    """Take the named leases that nobody holds now (expired, released, or held by a ``dead`` holder);
    create those never held."""
    if not names:
        return
    await session.execute(
        update(LeaseRow)
        .where(LeaseRow.name.in_(names), or_(LeaseRow.expires_at < now, LeaseRow.holder.in_(list(dead))))
        .values(holder=holder, epoch=LeaseRow.epoch + 1, expires_at=until, acquired_at=now)
    )
    existing = set(await session.scalars(select(LeaseRow.name).where(LeaseRow.name.in_(names))))
    for name in names:
        if name in existing:
            continue
        try:
            async with session.begin_nested():
                session.add(LeaseRow(name=name, holder=holder, epoch=1, expires_at=until, acquired_at=now))
        except IntegrityError:  # another replica created it first: it holds it
            pass


async def held_by(session: AsyncSession, holder: str, now: datetime) -> dict[str, int]:
    """The leases ``holder`` holds now, with their epochs."""
    query = select(LeaseRow.name, LeaseRow.epoch).where(
        LeaseRow.holder == holder, LeaseRow.expires_at >= now, ~LeaseRow.name.startswith(PRESENCE, autoescape=True)
    )
    rows = await session.execute(query)
    return {name: epoch for name, epoch in rows.all()}


async def release(session: AsyncSession, holder: str, held: dict[str, int], now: datetime) -> None:
    """Give the leases up at once (a clean shutdown): another replica takes them on its next beat."""
    for at_epochs in _at_epochs(held):
        await session.execute(update(LeaseRow).where(at_epochs, LeaseRow.holder == holder).values(expires_at=now))


async def still_held(session: AsyncSession, name: str, holder: str, epoch: int, now: datetime) -> bool:
    """Inside a writing transaction: True while the lease is ours at ``epoch``. On PostgreSQL the
    row is share-locked until the transaction ends, so a take-over waits for this write to commit."""
    query = (
        select(LeaseRow.epoch)
        .where(LeaseRow.name == name, LeaseRow.holder == holder, LeaseRow.epoch == epoch, LeaseRow.expires_at >= now)
        .with_for_update(read=True)
    )
    return (await session.scalar(query)) is not None


def announce(session: AsyncSession, holder: str, now: datetime, until: datetime) -> None:
    """Create this replica's presence row (renewed from then on by :func:`renew`), so that the others
    count it as live until ``until``."""
    session.add(LeaseRow(name=PRESENCE + holder, holder=holder, epoch=1, expires_at=until, acquired_at=now))


async def withdraw(session: AsyncSession, holder: str) -> None:
    """This replica leaves (a clean stop): it no longer counts as live."""
    await session.execute(delete(LeaseRow).where(LeaseRow.name == PRESENCE + holder))


async def forget_gone(session: AsyncSession, before: datetime) -> None:
    """Drop the presence rows of replicas gone since before ``before`` (killed: they never withdrew)."""
    await session.execute(delete(LeaseRow).where(LeaseRow.name.startswith(PRESENCE, autoescape=True), LeaseRow.expires_at < before))


async def lease_table(session: AsyncSession) -> tuple[list[LeaseRow], list[LeaseRow]]:
    """(every lease row, every presence row), as they are now."""
    rows = list(await session.scalars(select(LeaseRow).order_by(LeaseRow.name)))
    presence = [row for row in rows if row.name.startswith(PRESENCE)]
    return [row for row in rows if not row.name.startswith(PRESENCE)], presence
