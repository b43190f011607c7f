"""What the face reads of jobs: jobs by id, keyset lists, event pages, inputs."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from resolvers.common.reading import Listing, Page, Reader
from resolvers.jobs.ledger import EventRecord
from resolvers.jobs.queue import queue_positions
from resolvers.jobs.states import JobState
from store import jobs as job_store
from store.jobs import JobCursor, JobOrder, JobQuery
from store.tables import DatasetRow, JobRow
from store.types import utcnow

#: queuePosition counts at most this many waiting jobs (a job further back reads null)
MAX_QUEUE_POSITIONS = 10_000


class JobReads(Reader):
    async def by_ids(self, ids: Sequence[int], scope: int | None) -> dict[int, JobRow]:
        return await self.read(lambda session: job_store.jobs_by_ids(session, ids, scope))

    async def jobs(self, query: JobQuery, *, first: int, after: int | None) -> Listing[JobRow]:
        return await self.listing(
            lambda session: job_store.jobs_page(session, query, first=first, after=after),
            lambda session: job_store.count_jobs(session, query),
        )

    async def sorted_jobs(
        self, query: JobQuery, order: JobOrder, *, first: int, after: JobCursor | None
    ) -> Listing[tuple[JobRow, Decimal]]:
        return await self.listing(
            lambda session: job_store.sorted_jobs_page(session, query, order, first=first, after=after),
            lambda session: job_store.count_jobs(session, query),
        )

    async def stats(self, query: JobQuery) -> dict[JobState, int]:
        """How many matching jobs are in each state (every state, 0 included), by one GROUP BY."""
        found = await self.read(lambda session: job_store.count_by_state(session, query))
        return {state: found.get(state, 0) for state in JobState}

    async def queue_lengths(self, center_ids: Sequence[int]) -> dict[int, int]:
        return await self.read(lambda session: job_store.queue_lengths(session, center_ids))

    async def queue_positions(self) -> dict[int, int]:
        """Every waiting job's place in the network queue (1 = next), in the dispatcher's order."""
        keys = await self.read(lambda session: job_store.waiting_keys(session, MAX_QUEUE_POSITIONS))
        return queue_positions(keys, utcnow())

    async def events(self, job: JobRow, *, after: int, first: int) -> Page[EventRecord]:
        """A job's events after ``seq`` ``after``, in order."""
        rows = await self.read(lambda session: job_store.events_after(session, job.id, after, first + 1))
        records = [EventRecord.from_row(row, job.owner_id) for row in rows[:first]]
        return Page(rows=records, has_next=len(rows) > first, has_previous=after > 0)

    async def inputs(self, job_ids: Sequence[int], scope: int | None) -> dict[int, list[DatasetRow]]:
        """Each job's inputs that the viewer may see (an admin may have given a job another account's data)."""
        grouped = await self.read(lambda session: job_store.inputs_by_jobs(session, job_ids))
        if scope is None:
            return grouped
        return {job_id: [row for row in rows if row.owner_id == scope] for job_id, rows in grouped.items()}
