"""Persisted operations by the SHA-256 of their text, as Apollo clients send them.

A hash names one text forever, so a text once found is kept in memory; the database
is what replicas share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from store.db import Database
from store.operations import find_operation, list_operations, save_operation


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PersistedOperation:
    sha256: str
    text: str
    name: str | None
    cost: int | None
    safelisted: bool


class PersistedOperations:
    def __init__(self, db: Database, cache_size: int = 4096) -> None:
        self.db = db
        self.cache_size = cache_size
        self._known: dict[str, PersistedOperation] = {}

    async def find(self, sha256: str) -> PersistedOperation | None:
        known = self._known.get(sha256)
        if known is not None and known.safelisted:
            return known
        async with self.db.read() as session:
            row = await find_operation(session, sha256)
            found = None if row is None else PersistedOperation(row.sha256, row.text, row.name, row.cost, row.safelisted)
        if found is not None:
            self._remember(found)
        return found

    async def register(
        self, text: str, *, name: str | None = None, cost: int | None = None, safelisted: bool = False
    ) -> PersistedOperation:
        sha256 = sha256_of(text)
        async with self.db.transaction() as session:
            row = await save_operation(session, sha256=sha256, text=text, name=name, cost=cost, safelisted=safelisted)
            saved = PersistedOperation(row.sha256, row.text, row.name, row.cost, row.safelisted)
        self._remember(saved)
        return saved

    async def all(self) -> list[PersistedOperation]:
        async with self.db.read() as session:
            return [PersistedOperation(r.sha256, r.text, r.name, r.cost, r.safelisted) for r in await list_operations(session)]

    def _remember(self, operation: PersistedOperation) -> None:
        if len(self._known) >= self.cache_size:
            self._known.pop(next(iter(self._known)))
        self._known[operation.sha256] = operation
