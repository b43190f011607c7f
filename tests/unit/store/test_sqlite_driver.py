"""The one-trip SQLite driver: what the stock aiosqlite adapter answers, in one call to the
connection's thread per statement, and no rollback of a connection with nothing to roll back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.db import Database
from store.sqlite_driver import ONE_HOP_DRIVER

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True), Column("name", String, unique=True, nullable=False))


@contextmanager
def trips() -> Iterator[list[str]]:
    """The calls made on every aiosqlite connection's thread meanwhile, by name."""
    made: list[str] = []
    stock = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await stock(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield made
    finally:
        aiosqlite.Connection._execute = stock  # type: ignore[method-assign]


@pytest.fixture(params=["aiosqlite", ONE_HOP_DRIVER])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+{request.param}:///{tmp_path / 'things.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_rows_counts_ids_and_returning_are_the_stock_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(things).values(name="a"))
        assert inserted.inserted_primary_key == (1,)
        await connection.execute(insert(things), [{"name": "b"}, {"name": "c"}])  # executemany
        returned = await connection.execute(insert(things).values(name="d").returning(things.c.id))
        assert returned.scalar_one() == 4
        changed = await connection.execute(update(things).where(things.c.id > 2).values(name=things.c.name + "!"))
        assert changed.rowcount == 2
    async with engine.connect() as connection:
        rows = (await connection.execute(select(things.c.id, things.c.name).order_by(things.c.id))).all()
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
        assert await connection.scalar(select(func.count()).select_from(things)) == 4
        assert (await connection.execute(select(things).where(things.c.id == 99))).first() is None


async def test_a_failed_statement_raises_as_the_stock_driver_and_rolls_back(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(things).values(name="a"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(things).values(name="b"))
            await connection.execute(insert(things).values(name="a"))
    with pytest.raises(OperationalError):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT nothing FROM nowhere"))
    async with engine.connect() as connection:  # "b" went with its transaction
        assert (await connection.execute(select(things.c.name))).scalars().all() == ["a"]


async def test_a_write_left_open_is_rolled_back_when_its_connection_is_returned(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(insert(things).values(name="a"))  # never committed
    async with engine.connect() as connection:
        assert (await connection.execute(select(things.c.name))).scalars().all() == []


async def test_a_statement_is_one_trip_to_the_connections_thread(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+{ONE_HOP_DRIVER}:///{tmp_path / 'things.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    async with engine.connect() as connection:
        await connection.execute(select(things))  # the connection's first use sets it up
        with trips() as made:
            await connection.execute(select(things))
            await connection.execute(insert(things), [{"name": "a"}, {"name": "b"}])
            await connection.commit()
        assert len(made) == 3, made  # the stock adapter: 4 for the read (cursor, execute, fetchall, close) and 3 for the write
    with trips() as made:  # a read alone leaves no transaction open: nothing to roll back when it is returned
        async with engine.connect() as connection:
            await connection.execute(select(things))
    assert len(made) == 1, made
    with trips() as made:  # a write left open is rolled back, on its own trip
        async with engine.connect() as connection:
            await connection.execute(insert(things).values(name="c"))
    assert len(made) == 2, made
    await engine.dispose()


async def test_the_gateways_database_uses_it_for_aiosqlite_urls(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    try:
        assert {engine.dialect.driver for engine in database.engines} == {ONE_HOP_DRIVER}
        assert database.dialect == "sqlite"
        async with database.read() as session:
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await database.dispose()
