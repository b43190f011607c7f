"""What a read and a transaction send PostgreSQL besides their own statements: a read nothing (no
``BEGIN``, no ``ROLLBACK``), a transaction its ``BEGIN`` and ``COMMIT``, and neither a ping unless its
pooled connection sat idle long enough to have gone stale; one that the server closed meanwhile
is replaced before the caller sees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

import store.idle_ping
from store.db import Database

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@contextmanager
def sent_to_server(db: Database) -> Iterator[list[str]]:
    """The queries the driver sends of its own on ``db``'s connections meanwhile: ``BEGIN``, ``COMMIT``,
    ``ROLLBACK`` and pings (asyncpg logs its unprepared queries; SQLAlchemy's statements are prepared)."""
    sent: list[str] = []
    logged: list[Any] = []

    def log(record: Any) -> None:
        sent.append(record.query.strip())

    def attach(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # the pool pings before its checkout listeners run: a connection stays logged once seen
        if dbapi_connection._connection not in logged:
            dbapi_connection._connection.add_query_logger(log)
            logged.append(dbapi_connection._connection)

    engine = db.engine.sync_engine
    event.listen(engine, "checkout", attach)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", attach)
        for connection in logged:
            connection.remove_query_logger(log)


async def test_a_read_sends_its_statements_alone(db: Database) -> None:
    async with db.read() as session:
        await session.execute(text("SELECT 1"))  # the pool's connection is made before the count
    with sent_to_server(db) as sent:
        async with db.read() as session:
            await session.execute(text("SELECT 2"))
            await session.execute(text("SELECT 3"))
    assert sent == []


async def test_a_transaction_on_a_connection_used_a_moment_ago_is_not_pinged(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
    with sent_to_server(db) as sent:
        for n in (2, 3, 4):  # the first checkout starts the log: the next two would show a ping
            async with db.transaction() as session:
                await session.execute(text(f"SELECT {n}"))
    assert sent == ["BEGIN;", "COMMIT;"] * 3


async def test_a_single_write_sends_its_statement_alone_and_it_is_committed(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE written (n int)"))
    with sent_to_server(db) as sent:
        async with db.single_write() as connection:
            await connection.execute(text("INSERT INTO written VALUES (7)"))
    assert sent == []
    other = Database(db.url, schema=db.schema)  # no COMMIT was sent, yet another connection sees the row
    try:
        async with other.read() as session:
            assert (await session.execute(text("SELECT n FROM written"))).scalar_one() == 7
    finally:
        await other.dispose()


async def test_an_idle_connection_the_server_closed_is_replaced_before_use(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    async with db.read() as session:
        backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    other = Database(db.url, schema=db.schema)
    try:
        async with other.read() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    finally:
        await other.dispose()
    monkeypatch.setattr(store.idle_ping, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle now
    async with db.read() as session:
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() != backend
