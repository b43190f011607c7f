"""The database handle: engine, sessions, write transactions and migrations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from store.idle_ping import ping_idle_connections
from store.sqlite_driver import ONE_HOP_DRIVER

MIGRATIONS = Path(__file__).with_name("migrations")
#: how long a SQLite write waits for another connection's lock before it fails
BUSY_TIMEOUT_MS = 30000


class Database:
    """One engine per gateway. ``read()`` for queries, ``transaction()`` for writes.

    SQLite has one writer at a time; a deferred transaction that reads and then writes
    can fail instead of waiting when another writer got there first. Write transactions
    on SQLite therefore take an in-process lock, so they queue instead of failing. The
    writer that holds the lock writes on a connection of its own (``_writes``): were it to
    wait for a pooled connection behind a crowd of readers, every writer queued behind it
    would wait too, the lease heartbeat among them.
    """

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False, connections: int | None = None) -> None:
        """``connections`` caps the pool (a small handle of its own, see ``dedicated``)."""
        self.url = url
        self.schema = schema
        self.echo = echo
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        connect_args: dict[str, Any] = {}
        engine_args: dict[str, Any] = {}
        database = parsed.database or ""
        engine_url: Any = url
        if self.dialect == "sqlite":
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["timeout"] = 30
            if parsed.get_driver_name() == "aiosqlite":  # the same driver, one trip to its thread per statement
                engine_url = parsed.set(drivername=f"sqlite+{ONE_HOP_DRIVER}")
        elif self.dialect == "postgresql":
            engine_args.update(pool_size=10, max_overflow=20)
            if schema:
                connect_args["server_settings"] = {"search_path": schema}
        if connections is not None:
            engine_args.update(pool_size=connections, max_overflow=0)
        self.engine: AsyncEngine = create_async_engine(engine_url, echo=echo, connect_args=connect_args, **engine_args)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = self.sessions
        self._reads = self.sessions
        self._autocommit: AsyncEngine | None = None
        self._write_lock: asyncio.Lock | None = None
        self._write_engine: AsyncEngine | None = None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self._write_lock = asyncio.Lock()
            if database and database != ":memory:":  # an in-memory database lives in one connection only
                # one writer at a time holds the lock: one connection serves them all
                self._write_engine = create_async_engine(engine_url, echo=echo, connect_args=connect_args, pool_size=1, max_overflow=0)
                event.listen(self._write_engine.sync_engine, "connect", _sqlite_pragmas)
                self._writes = async_sessionmaker(self._write_engine, expire_on_commit=False)
        elif self.dialect == "postgresql":
            ping_idle_connections(self.engine.sync_engine)
            # a read needs no transaction around it: under READ COMMITTED each statement sees its own
            # snapshot either way, and locks are taken in ``transaction()`` only; no BEGIN, no ROLLBACK
            self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self._reads = async_sessionmaker(self._autocommit, expire_on_commit=False)

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine this handle runs statements on (the writers' own, on SQLite)."""
        return (self.engine,) if self._write_engine is None else (self.engine, self._write_engine)

    def dedicated(self, connections: int = 2) -> Database:
        """A handle with a pool of its own, for a loop that must reach the database even while the
        shared pool is drained (the lease heartbeat: a replica that cannot renew gives its centers up).
        On SQLite this handle serves: its writers already have a connection of their own."""
        if self.dialect == "sqlite":
            return self
        return Database(self.url, schema=self.schema, echo=self.echo, connections=connections)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reads() as session:
            yield session

    async def answers(self) -> bool:
        """Whether the database answers a trivial query now (the readiness probe)."""
        try:
            async with self.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @contextlib.asynccontextmanager
    async def transaction(self, lock_wait_seconds: float | None = None) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success and rolled back on error. With
        ``lock_wait_seconds``, a write that waits longer than that for a lock fails instead
        (the default waits as long as the database's own timeout, 30 s on SQLite)."""
        if self._write_lock is None:
            async with self.sessions() as session, session.begin():
                if lock_wait_seconds is not None:
                    await session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_wait_seconds * 1000)}ms'"))
                yield session
            return
        async with self._write_lock:
            async with self._writes() as session, session.begin():
                if lock_wait_seconds is None:
                    yield session
                    return
                connection = await session.connection()
                await connection.exec_driver_sql(f"PRAGMA busy_timeout={int(lock_wait_seconds * 1000)}")
                try:
                    yield session
                finally:  # the connection goes back to the pool with the usual wait
                    await connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    @contextlib.asynccontextmanager
    async def core_transaction(self) -> AsyncIterator[AsyncConnection]:
        """``transaction()`` for writes made only of Core statements: a connection in a transaction,
        without the ORM session around it (a fifth less CPU a commit, on every submit's hand-over)."""
        if self._write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._write_lock:
            async with (self._write_engine or self.engine).begin() as connection:
                yield connection

    @contextlib.asynccontextmanager
    async def single_write(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a write that is atomic on its own. On PostgreSQL it must be one statement:
        it runs in autocommit, its own transaction, with no BEGIN nor COMMIT around it (one round trip
        where a transaction takes three). Elsewhere ``core_transaction()``, for the same write in the
        several statements it may take there."""
        if self._autocommit is None:
            async with self.core_transaction() as connection:
                yield connection
            return
        async with self._autocommit.connect() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._write_engine is not None:
            await self._write_engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic ``upgrade head``)."""
        from alembic import command

        config = alembic_config(self.url)
        async with self.engine.begin() as connection:
            if self.schema:
                await connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

            def upgrade(sync_connection: Any) -> None:
                config.attributes["connection"] = sync_connection
                command.upgrade(config, "head")

            await connection.run_sync(upgrade)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
