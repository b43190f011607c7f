"""The SQL one request issues, told apart from every background loop's by its request id.

Background loops (reconcilers, the service controller, the webhook sender, ...) share the
engine with requests; matching statements by their text to leave those out breaks with each
new loop. A request sent with ``X-Request-Id`` carries that id in a context variable that
SQLAlchemy's greenlets inherit, so the listener keeps exactly that request's statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from graph.http.logs import REQUEST_ID

COUNTED_REQUEST = "counted-request"
#: headers for a request whose statements `statements_of` records
COUNTED = {"x-request-id": COUNTED_REQUEST}


@contextmanager
def statements_of(gateway: Any, *, selects_only: bool = True, tokens_too: bool = False) -> Iterator[list[str]]:
    """Record the statements of requests sent with ``COUNTED`` headers, but the token lookup (unless ``tokens_too``)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if REQUEST_ID.get() != COUNTED_REQUEST or ("FROM api_tokens" in statement and not tokens_too):
            return
        if not selects_only or statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    with recording(gateway, record):
        yield statements


@contextmanager
def recording(gateway: Any, record: Callable[..., None]) -> Iterator[None]:
    """``record`` called before every statement on every engine of the gateway's database, meanwhile."""
    engines = [engine.sync_engine for engine in gateway.runtime.db.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


@contextmanager
def task_statements(gateway: Any, task_name: str) -> Iterator[list[str]]:
    """The statements a background loop issues meanwhile, told apart by its task's name."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == task_name:
            statements.append(statement)

    with recording(gateway, record):
        yield statements
