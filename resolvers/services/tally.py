"""Requests and tokens counted durably before their answers go out (a group commit).

A request's count is added to the batch being gathered and the request waits until that batch
is written; requests that finish while a write is under way go into the next one, so one
transaction counts every request that ended meanwhile. A gateway killed after answering has
therefore written its count (nothing lost); one killed before the write commits has not
answered either. A write that fails keeps its counts for the next batch (the controller's
round flushes what is left), and the waiting answers go out anyway.
"""

from __future__ import annotations

import asyncio
import logging

from resolvers.services.usage import TokenUsage
from store import services as service_store
from store.db import Database

log = logging.getLogger(__name__)


class Tally:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._requests: dict[int, int] = {}
        self._tokens: dict[int, tuple[int, int]] = {}
        self._next: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        return bool(self._requests or self._tokens)

    def add(self, service_id: int, requests: int, usage: TokenUsage | None = None) -> None:
        """Count without waiting (the next write takes it)."""
        if requests:
            self._requests[service_id] = self._requests.get(service_id, 0) + requests
        if usage is not None and (usage.prompt or usage.completion):
            prompt, completion = self._tokens.get(service_id, (0, 0))
            self._tokens[service_id] = (prompt + usage.prompt, completion + usage.completion)

    async def count(self, service_id: int, usage: TokenUsage | None = None) -> None:
        """Count one request (and the tokens it reported), returning once that is written."""
        self.add(service_id, 1, usage)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        written = self._next
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches(), name="service-tally")
        await asyncio.shield(written)

    async def _write_batches(self) -> None:
        try:
            while self._next is not None:
                batch, self._next = self._next, None
                try:
                    await self.flush()
                except Exception:
                    log.exception("counting the services' requests failed; the counts are kept for the next write")
                finally:
                    if not batch.done():
                        batch.set_result(None)
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Write what is counted and not yet written; a failed write puts it back."""
        if not self.pending:
            return
        requests, tokens = self._requests, self._tokens
        self._requests, self._tokens = {}, {}
        try:
            async with self.db.transaction() as session:
                await service_store.add_requests(session, requests)
                await service_store.add_tokens(session, tokens)
        except BaseException:
            for service_id, count in requests.items():
                self.add(service_id, count)
            for service_id, (prompt, completion) in tokens.items():
                self.add(service_id, 0, TokenUsage(prompt, completion))
            raise

    async def close(self) -> None:
        """Wait for the write under way, then write what is left."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
        await self.flush()
