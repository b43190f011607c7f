"""``core_transaction``: Core writes committed together or not at all, queued with the ORM's
writers on SQLite (one writer at a time) instead of failing against them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from store.audit import NewEntry, add_entries
from store.auth_tables import AuditEntryRow
from store.db import Database

pytestmark = pytest.mark.both_databases


def entry(operation: str) -> NewEntry:
    return NewEntry(account_id=None, token_id=None, operation=operation, input=None, outcome="OK", codes=(), request_id=None)


async def operations(db: Database) -> list[str]:
    async with db.read() as session:
        return sorted(await session.scalars(select(AuditEntryRow.operation)))


async def test_its_writes_are_committed_together_or_rolled_back_together(db: Database) -> None:
    async with db.core_transaction() as connection:
        await add_entries(connection, [entry("kept")])
    with pytest.raises(RuntimeError):
        async with db.core_transaction() as connection:
            await add_entries(connection, [entry("lost-1")])
            await add_entries(connection, [entry("lost-2")])
            raise RuntimeError("the caller failed half way")
    assert await operations(db) == ["kept"]


async def test_it_queues_with_the_sessions_writers(db: Database) -> None:
    async def core(n: int) -> None:
        async with db.core_transaction() as connection:
            await add_entries(connection, [entry(f"core-{n}")])
            await asyncio.sleep(0)  # the other writers ask meanwhile

    async def orm(n: int) -> None:
        async with db.transaction() as session:
            await add_entries(session, [entry(f"orm-{n}")])
            await asyncio.sleep(0)

    await asyncio.gather(*(write(n) for n in range(10) for write in (core, orm)))
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntryRow)) == 20
