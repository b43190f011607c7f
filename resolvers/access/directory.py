"""Accounts by id, as every request needs them (the viewer's account, its quota), mostly from memory.

A gateway keeps the accounts it read recently in a ``BusCache``. Whatever changes an account row
(its quota, its storage quota) calls ``changed`` after the commit: the news goes out on the bus
and ``changed`` returns once every gateway has dropped the account, so the next request on any
replica reads the new row. A change made behind the gateways' backs (an edited row, a command run
without the bus) is seen within the cache's ``ttl``.
"""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.access.cache import BusCache
from resolvers.access.news import Acknowledger, announce
from store import accounts as account_store
from store.bus import InMemoryBus
from store.db import Database
from store.tables import AccountRow

#: the bus channel that tells account caches an account row changed
ACCOUNT_CHANGES = "accounts:changed"
#: where each gateway confirms it has dropped a changed account from its cache
ACCOUNT_CHANGE_ACKS = "accounts:changed:acks"


class AccountDirectory:
    def __init__(self, db: Database, bus: InMemoryBus | None = None, cache: BusCache[int, AccountRow] | None = None) -> None:
        self.db = db
        self.bus = bus
        # without a bus no news of a change could reach the cache: then there is none
        self.cache = cache if bus is not None else None
        if bus is not None:
            self._acks = Acknowledger(bus, ACCOUNT_CHANGE_ACKS)
            self._unwatch = bus.watch(ACCOUNT_CHANGES, self._on_changed)

    async def by_ids(self, ids: Sequence[int]) -> dict[int, AccountRow]:
        """The accounts of ``ids`` that exist (rows shared between requests: read them, never change them)."""
        cache = self.cache if self.bus is not None and self.bus.connected else None
        if cache is None:
            async with self.db.read() as session:
                return await account_store.accounts_by_ids(session, ids)
        epoch, generation = self._epoch(), cache.generation
        found: dict[int, AccountRow] = {}
        missing: list[int] = []
        for account_id in ids:
            row = cache.lookup(account_id, epoch)
            if row is None:
                missing.append(account_id)
            else:
                found[account_id] = row
        if missing:
            async with self.db.read() as session:
                read = await account_store.accounts_by_ids(session, missing)
            # a change (or a lost bus connection) while we read: what we read may be stale
            if cache.generation == generation and self._epoch() == epoch:
                for account_id, row in read.items():
                    cache.store(account_id, row, epoch)
            found.update(read)
        return found

    async def one(self, account_id: int) -> AccountRow | None:
        return (await self.by_ids([account_id])).get(account_id)

    async def changed(self, account_id: int) -> None:
        """After a committed change to the account's row: every gateway drops it before this returns."""
        if self.cache is not None:
            self.cache.forget_key(account_id)
        if self.bus is not None:
            await announce(self.bus, ACCOUNT_CHANGES, ACCOUNT_CHANGE_ACKS, {"accountId": account_id})

    def _epoch(self) -> int:
        return self.bus.epoch if self.bus is not None else 0

    def _on_changed(self, message: dict[str, object]) -> None:
        account_id = message.get("accountId")
        if self.cache is not None and isinstance(account_id, int):
            self.cache.forget_key(account_id)
        self._acks.confirm(message)
