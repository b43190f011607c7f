"""A pooled connection is pinged before use only when it sat idle long enough to have gone stale.

``pool_pre_ping`` pings on every checkout: on asyncpg that is three round trips (``BEGIN``, an
empty query, ``ROLLBACK``) before every transaction, about 5% of a submit's CPU on PostgreSQL. A
connection that came back to the pool moments ago was working then; one that sat idle may have
been closed by the server, a proxy or a restart in between, and is pinged. A failed ping makes
the pool drop the connection and hand out another (SQLAlchemy's ``DisconnectionError`` contract).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

#: a connection back in the pool for less than this is handed out without a ping
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "aicn_checked_in_at"


def ping_idle_connections(engine: Engine) -> None:
    """Ping ``engine``'s pooled connections on checkout once idle ``PING_AFTER_IDLE_SECONDS`` or more."""

    def note_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return  # new (it just connected), or in use a moment ago
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise exc.DisconnectionError(f"a pooled connection idle for {time.monotonic() - checked_in_at:.0f} s is gone") from error

    event.listen(engine, "checkin", note_checkin)
    event.listen(engine, "checkout", ping_if_idle)
