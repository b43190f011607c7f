"""The audit log writes concurrent mutations' entries together, one transaction for those that
arrive while one is being written, and an entry the database refuses costs no other its own."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import event, func, select

from resolvers.access.audit import OK, AuditLog, AuditRecord
from resolvers.access.viewer import Viewer
from store.auth_tables import AuditEntryRow
from store.db import Database

pytestmark = pytest.mark.both_databases

ANONYMOUS = Viewer(account_id=0, authenticated=False)


def counting_commits(db: Database) -> list[int]:
    commits: list[int] = []

    def count(_connection: Any) -> None:
        commits.append(1)

    for engine in db.engines:
        event.listen(engine.sync_engine, "commit", count)
    return commits


async def entries(db: Database) -> list[tuple[str, str | None]]:
    async with db.read() as session:
        rows = await session.execute(select(AuditEntryRow.operation, AuditEntryRow.request_id).order_by(AuditEntryRow.id))
        return [(operation, request_id) for operation, request_id in rows]


async def test_concurrent_entries_are_all_written_in_fewer_transactions(db: Database) -> None:
    audit = AuditLog(db)
    commits = counting_commits(db)
    await asyncio.gather(*(audit.record(ANONYMOUS, AuditRecord(f"op{n}", {"n": n}, OK), f"request-{n}") for n in range(20)))
    written = await entries(db)
    assert sorted(written) == sorted((f"op{n}", f"request-{n}") for n in range(20))
    assert 1 <= len(commits) < 20  # the first alone, the ones asked meanwhile together


async def test_an_entry_the_database_refuses_costs_the_others_nothing(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(db)
    unstorable = {"value": object()}  # not JSON: binding it fails, and with it the batch it is in
    records = [AuditRecord("first", None, OK), AuditRecord("bad", unstorable, OK), AuditRecord("last", None, OK)]
    with caplog.at_level(logging.ERROR, logger="resolvers.access.audit"):
        await asyncio.gather(*(audit.record(ANONYMOUS, record, record.operation) for record in records))
    assert sorted(operation for operation, _ in await entries(db)) == ["first", "last"]
    refused = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(refused) == 1 and "bad" in refused[0].getMessage()
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntryRow)) == 2
