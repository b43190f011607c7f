"""The audit log of mutations: who did what, when, and how it ended."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resolvers.access.viewer import Viewer
from resolvers.common.group_writes import GroupedWrites
from store import audit as audit_store
from store.audit import NewEntry
from store.auth_tables import AuditEntryRow
from store.db import Database
from store.paging import Page

log = logging.getLogger(__name__)

OK = "OK"
USER_ERRORS = "USER_ERRORS"
ERROR = "ERROR"


@dataclass(frozen=True)
class AuditRecord:
    operation: str
    input: dict[str, Any] | None
    outcome: str
    codes: Sequence[str] = ()


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._entries: GroupedWrites[NewEntry] = GroupedWrites(self._write)

    async def record(self, viewer: Viewer, record: AuditRecord, request_id: str | None) -> None:
        """Write one entry, committed when this returns (with those of concurrent mutations, in one
        transaction). A failure to write is logged, never raised: the mutation has happened."""
        entry = NewEntry(
            account_id=viewer.account_id if viewer.authenticated else None,
            token_id=viewer.token_id,
            operation=record.operation,
            input=record.input,
            outcome=record.outcome,
            codes=record.codes,
            request_id=request_id,
        )
        try:
            await self._entries.add(entry)
        except Exception:
            log.exception("could not write the audit entry for %s (request_id=%s)", record.operation, request_id)

    async def _write(self, entries: Sequence[NewEntry]) -> None:
        try:
            async with self.db.core_transaction() as connection:
                await audit_store.add_entries(connection, entries)
        except Exception:
            if len(entries) == 1:
                raise
            # one entry the database refuses must not cost the others theirs: each on its own
            log.warning("a batch of %d audit entries failed; writing them one by one", len(entries), exc_info=True)
            for entry in entries:
                try:
                    async with self.db.core_transaction() as connection:
                        await audit_store.add_entries(connection, [entry])
                except Exception:
                    log.exception("could not write the audit entry for %s (request_id=%s)", entry.operation, entry.request_id)

    async def page(self, account_id: int | None, *, first: int, after: int | None) -> Page[AuditEntryRow]:
        async with self.db.read() as session:
            return await audit_store.entries_page(session, account_id, first=first, after=after)

    async def count(self, account_id: int | None) -> int:
        async with self.db.read() as session:
            return await audit_store.count_entries(session, account_id)
