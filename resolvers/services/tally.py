"""Requests and tokens counted durably before their answers go out.

A request's count is appended to this gateway's journal (store/count_journal.py) before its
answer goes out: a gateway killed after answering has therefore kept the count (nothing lost),
and one killed before the append has not answered either. Every round of the service controller
folds the journals in the folder into the services' totals, exactly once; so do the start (what
a killed gateway left) and a clean stop. Should the append fail (a full disk), that request is
counted straight into the database before it is answered instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.services.usage import TokenUsage
from store import count_journal
from store import services as service_store
from store.count_journal import CountJournal, Counts, FoldRaced
from store.db import Database

log = logging.getLogger(__name__)

#: the data folder's subfolder of journals
COUNTS_FOLDER = "counts"
#: this gateway's journal starts anew once it is folded to its end and at least this long
ROTATE_BYTES = 4 * 1024 * 1024


class Tally:
    def __init__(self, db: Database, folder: Path) -> None:
        self.db = db
        self.journal = CountJournal(folder)
        #: how far each journal is known to be folded (read from the database the first time it is seen)
        self._folded: dict[str, int] = {}
        self._folding = asyncio.Lock()
        #: told of every request counted (the service controller, so that an idle one folds it soon)
        self.on_count: Callable[[], None] = lambda: None

    async def count(self, service_id: int, usage: TokenUsage | None = None) -> None:
        """Count one request (and the tokens it reported), returning once that is durable."""
        prompt, completion = (usage.prompt, usage.completion) if usage is not None else (0, 0)
        try:
            self.journal.append(service_id, 1, prompt, completion)
        except OSError:
            log.exception("the count journal cannot be written; this request is counted in the database")
            counts = Counts()
            counts.add(service_id, 1, prompt, completion)
            async with self.db.transaction() as session:
                await _add(session, counts)
        self.on_count()

    async def fold(self) -> bool:
        """Add every journal's unfolded counts to the services' totals (once, whoever else folds);
        the journals of gateways that ended are deleted once folded to their end. Whether there was
        anything to fold."""
        folded = False
        async with self._folding:
            for name in self.journal.names():
                try:
                    folded = await self._fold_one(name, done=False) or folded
                except (FoldRaced, IntegrityError):
                    self._folded.pop(name, None)  # another gateway folded it meanwhile: read again next time
                    folded = True
            if self._folded.get(self.journal.name, 0) >= ROTATE_BYTES:
                await self._fold_one(self.journal.rotate(), done=True)
        return folded

    async def _fold_one(self, name: str, *, done: bool) -> bool:
        path = self.journal.path(name)
        try:
            size = path.stat().st_size
        except OSError:  # gone (folded elsewhere), or never made
            return False
        start = self._folded.get(name)
        if start is None:
            async with self.db.read() as session:
                start, finished = await count_journal.folded(session, name)
            if finished:
                path.unlink(missing_ok=True)
                return True
            self._folded[name] = start
        ended = done or (name != self.journal.name and count_journal.writer_gone(name))
        if size <= start and not ended:
            return False
        counts, end = count_journal.read_from(path, start)
        async with self.db.transaction() as session:
            await _add(session, counts)
            await count_journal.move_offset(session, name, start, end, done=ended)
        self._folded[name] = end
        if ended:
            path.unlink(missing_ok=True)
            self._folded.pop(name, None)
        return True

    async def close(self) -> None:
        """Fold what is left, this gateway's journal to its end (then deleted)."""
        try:
            async with self._folding:
                await self._fold_one(self.journal.name, done=True)
        finally:
            self.journal.close()


async def _add(session: AsyncSession, counts: Counts) -> None:
    await service_store.add_requests(session, counts.requests)
    await service_store.add_tokens(session, counts.tokens)
