"""The audit log of mutations: who did what, when, and how it ended."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resolvers.access.viewer import Viewer
from store import audit as audit_store
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

    async def record(self, viewer: Viewer, record: AuditRecord, request_id: str | None) -> None:
        """Write one entry. A failure to write is logged, never raised: the mutation has happened."""
        try:
            async with self.db.transaction() as session:
                await audit_store.add_entry(
                    session,
                    account_id=viewer.account_id if viewer.authenticated else None,
                    token_id=viewer.token_id,
                    operation=record.operation,
                    input=record.input,
                    outcome=record.outcome,
                    codes=record.codes,
                    request_id=request_id,
                )
        except Exception:
            log.exception("could not write the audit entry for %s (request_id=%s)", record.operation, request_id)

    async def page(self, account_id: int | None, *, first: int, after: int | None) -> Page[AuditEntryRow]:
        async with self.db.read() as session:
            return await audit_store.entries_page(session, account_id, first=first, after=after)

    async def count(self, account_id: int | None) -> int:
        async with self.db.read() as session:
            return await audit_store.count_entries(session, account_id)
