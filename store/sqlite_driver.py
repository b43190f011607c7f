"""SQLAlchemy's aiosqlite dialect with one trip to the connection's thread per statement.

aiosqlite runs every call on a thread of its own, and SQLAlchemy's adapter makes four such
calls for a statement that returns rows (open a cursor, execute, fetch, close) and three for
one that does not: each a queue hand-off and a wake-up of the event loop, which cost more than
the statement itself (a primary-key read takes microseconds in SQLite). This adapter runs the
whole statement in one call on that thread, cursor opened, rows fetched and cursor closed
there, and skips the rollback of a connection that has no transaction open (a read session
ends with one). Everything else, errors included, is the stock adapter's.

Engines ask for it as ``sqlite+aicn_aiosqlite://`` (``ONE_HOP_DRIVER``); ``Database`` maps
``sqlite+aiosqlite`` URLs to it.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

ONE_HOP_DRIVER = "aicn_aiosqlite"

#: what one statement leaves behind: description, rowcount, lastrowid, rows, whether a transaction is open
Outcome = tuple[Any, int, int | None, list[Any], bool]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """On the connection's thread: the statement from cursor to closed cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows, connection.in_transaction
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that holds a statement's outcome; the sqlite3 cursor behind it lives for one call only."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: OneHopConnection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # None before any INSERT, as sqlite3's

    async def _async_soft_close(self) -> None:
        """Nothing to close: the statement's cursor was closed on the connection's thread."""

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._run(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapt = self._adapt_connection
        assert isinstance(adapt, OneHopConnection)
        async with adapt._execute_mutex:
            adapt.in_transaction = True  # until the thread says otherwise (a statement that fails may have begun one)
            outcome = await self._connection._execute(_run, self._connection._conn, operation, parameters, many)
            self._description, self._rowcount, self._lastrowid, rows, adapt.in_transaction = outcome
            self._rows = collections.deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("in_transaction",)

    _cursor_cls = OneHopCursor  # type: ignore[assignment]  # a subclass; mypy reads the stock attribute as exact

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        #: whether SQLite may have a transaction open on this connection (True when unsure)
        self.in_transaction = True

    def rollback(self) -> None:
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False

    def commit(self) -> None:
        super().commit()
        self.in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        stock = super().connect(*arg, **kw)
        return OneHopConnection(self, stock._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    driver = ONE_HOP_DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{ONE_HOP_DRIVER}", __name__, "OneHopDialect")
