"""Live streams: a job's events with replay, and changes to many jobs.

``job_events`` subscribes to the bus *before* reading the log and replays then follows it
(resolvers/common/streams.py): every event with ``seq > after`` exactly once, in order,
ending after the job's terminal state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from resolvers.access.viewer import Viewer
from resolvers.common.streams import replay_then_live
from resolvers.jobs.ledger import EventRecord
from resolvers.jobs.states import TERMINAL_STATES
from store import jobs as job_store
from store.bus import InMemoryBus
from store.db import Database
from store.tables import JobRow

REPLAY_BATCH = 500
#: how long a quiet stream waits before checking the log itself (covers lost bus news)
IDLE_RECHECK_SECONDS = 5.0


class JobStreams:
    def __init__(self, db: Database, bus: InMemoryBus) -> None:
        self.db = db
        self.bus = bus

    async def _read_after(self, job_id: int, owner_id: int, after: int) -> list[EventRecord]:
        async with self.db.read() as session:
            rows = await job_store.events_after(session, job_id, after, REPLAY_BATCH)
        return [EventRecord.from_row(row, owner_id) for row in rows]

    async def _ended_before(self, job_id: int, seq: int) -> bool:
        """True when the job has ended and the caller has seen all of its events."""
        async with self.db.read() as session:
            job = (await job_store.jobs_by_ids(session, [job_id])).get(job_id)
        return job is None or (job.state in TERMINAL_STATES and job.last_seq <= seq)

    async def job_events(self, job: JobRow, after: int) -> AsyncIterator[EventRecord]:
        async with self.bus.subscribe(f"job:{job.id}") as live:
            async for record in replay_then_live(
                live,
                after,
                read_after=lambda last: self._read_after(job.id, job.owner_id, last),
                ended_before=lambda last: self._ended_before(job.id, last),
                from_message=EventRecord.from_message,
                batch=REPLAY_BATCH,
                idle_recheck=IDLE_RECHECK_SECONDS,
            ):
                yield record

    async def job_updates(self, viewer: Viewer, accept: Callable[[JobRow], bool]) -> AsyncIterator[JobRow]:
        """The caller's jobs, each time one of them changes and passes ``accept``."""
        async with self.bus.subscribe("jobs") as live:
            while True:
                message = await live.get()
                if message is None:
                    continue
                record = EventRecord.from_message(message)
                if viewer.scope is not None and record.owner_id != viewer.scope:
                    continue
                async with self.db.read() as session:
                    job = (await job_store.jobs_by_ids(session, [record.job_id], viewer.scope)).get(record.job_id)
                if job is not None and job.last_seq == record.seq and accept(job):
                    yield job

    async def center_changes(self) -> AsyncIterator[int]:
        """The id of each center whose health state changes, as it changes."""
        async with self.bus.subscribe("centers") as live:
            while True:
                message = await live.get()
                if message is not None:
                    yield int(message["center_id"])
