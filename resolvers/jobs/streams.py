"""Live streams: a job's events with replay, and changes to many jobs.

``job_events`` subscribes to the bus *before* reading the log and replays then follows it
(resolvers/common/streams.py): every event with ``seq > after`` exactly once, in order,
ending after the job's terminal state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from resolvers.access.viewer import Viewer
from resolvers.common.coalesce import CoalescedReads
from resolvers.common.streams import replay_then_live
from resolvers.jobs.ledger import EventRecord
from resolvers.jobs.states import TERMINAL_STATES, JobEventKind
from store import jobs as job_store
from store.bus import InMemoryBus
from store.db import Database
from store.jobs import JobQuery
from store.tables import JobRow

REPLAY_BATCH = 500
#: jobUpdates: how many jobs a snapshot (or a resume) sends first at most
SNAPSHOT_LIMIT = 500
#: jobUpdates: a job's progress is sent at most once per this many seconds
PROGRESS_INTERVAL_SECONDS = 1.0
#: how long a quiet stream waits before checking the log itself (covers lost bus news)
IDLE_RECHECK_SECONDS = 5.0


class JobStreams:
    def __init__(self, db: Database, bus: InMemoryBus) -> None:
        self.db = db
        self.bus = bus
        self.rows = FreshRows(db)
        #: many subscribers of one job replay and recheck its log from the same place at once: one read
        self._events: CoalescedReads[list[EventRecord]] = CoalescedReads()
        self._ends: CoalescedReads[bool] = CoalescedReads()

    async def _read_after(self, job_id: int, owner_id: int, after: int) -> list[EventRecord]:
        async def read() -> list[EventRecord]:
            async with self.db.read() as session:
                rows = await job_store.events_after(session, job_id, after, REPLAY_BATCH)
            return [EventRecord.from_row(row, owner_id) for row in rows]

        return await self._events.read((job_id, after), read)

    async def _ended_before(self, job_id: int, seq: int) -> bool:
        """True when the job has ended and the caller has seen all of its events."""

        async def read() -> bool:
            async with self.db.read() as session:
                job = (await job_store.jobs_by_ids(session, [job_id])).get(job_id)
            return job is None or (job.state in TERMINAL_STATES and job.last_seq <= seq)

        return await self._ends.read((job_id, seq), read)

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

    async def job_updates(
        self,
        viewer: Viewer,
        accept: Callable[[JobRow], bool],
        *,
        query: JobQuery | None = None,
        snapshot: bool = False,
        since: datetime | None = None,
        progress_interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> AsyncIterator[JobRow]:
        """The caller's jobs, each time one of them changes and passes ``accept`` (see ``UpdatesStream``)."""
        stream = self.updates(viewer, accept, query=query, snapshot=snapshot, since=since, progress_interval=progress_interval)
        records = stream.records()
        try:
            async for record in records:
                if record is not None:
                    yield record.row
        finally:
            await records.aclose()
            stream.close()  # also when it never started

    def updates(
        self,
        viewer: Viewer,
        accept: Callable[[JobRow], bool],
        *,
        query: JobQuery | None = None,
        snapshot: bool = False,
        since: datetime | None = None,
        progress_interval: float = PROGRESS_INTERVAL_SECONDS,
        positions: dict[int, int] | None = None,
    ) -> UpdatesStream:
        """A `jobUpdates` stream, listening to the bus from this call on."""
        return UpdatesStream(
            self, viewer, accept, query or JobQuery(owner_id=viewer.scope), snapshot, since, progress_interval, positions or {}
        )

    async def _opening(self, query: JobQuery, snapshot: bool, since: datetime | None) -> list[JobRow]:
        if not snapshot and since is None:
            return []
        async with self.db.read() as session:
            if since is not None:
                return await job_store.jobs_changed_since(session, query, since, SNAPSHOT_LIMIT)
            return list((await job_store.jobs_page(session, query, first=SNAPSHOT_LIMIT, after=None)).rows)

    async def center_changes(self) -> AsyncIterator[int]:
        """The id of each center whose health state changes, as it changes."""
        async with self.bus.subscribe("centers") as live:
            while True:
                message = await live.get()
                if message is not None:
                    yield int(message["center_id"])


@dataclass(frozen=True)
class JobUpdate:
    """A job's row as a `jobUpdates` stream sends it: ``seq`` is the job's latest event, per job."""

    row: JobRow

    @property
    def key(self) -> int:
        return self.row.id

    @property
    def seq(self) -> int:
        return self.row.last_seq

    @property
    def terminal(self) -> bool:
        return False  # a dashboard's stream outlives its jobs


class UpdatesStream:
    """The caller's jobs, each time one of them changes and passes ``accept``.

    With ``snapshot``, first the matching jobs as they are (newest first, at most
    ``SNAPSHOT_LIMIT``); with ``since`` (a reconnecting client's last ``updatedAt``), first
    every matching job changed at or after it, oldest change first. The bus is subscribed when
    the stream is made, before either is read, so nothing that changes meanwhile is lost; a job
    already read at its latest event is not sent again. A change of state is sent at once;
    progress reports of a job at most once per ``progress_interval`` (the latest one, never
    dropped). ``positions`` (job id -> the newest seq read, sent or passed over) is where the
    stream stands; a stream that takes over from another starts from that one's.
    """

    def __init__(
        self,
        streams: JobStreams,
        viewer: Viewer,
        accept: Callable[[JobRow], bool],
        query: JobQuery,
        snapshot: bool,
        since: datetime | None,
        progress_interval: float,
        positions: dict[int, int],
    ) -> None:
        self.streams, self.viewer, self.accept, self.query = streams, viewer, accept, query
        self.snapshot, self.since = snapshot, since
        self.positions = dict(positions)
        self.throttle = ProgressThrottle(progress_interval)
        self.live, self._stop_listening = streams.bus.listen("jobs")
        #: job id -> the newest seq the news told of
        self._seen: dict[int, int] = {}
        self._opened = False
        #: rows of the batch being handed out that are still to come
        self._left = 0

    def settled(self) -> bool:
        """Nothing read or told that it has not handed out: no news waiting, no progress deferred,
        no rows of a batch left (another stream may take over from its ``positions``)."""
        return self._opened and not self._left and self.live.queue.empty() and not self.live.overflowed and not self.throttle.deferred

    def unheard(self) -> dict[int, int]:
        """The rows it has read ahead of their news (a fresh row shows an event the bus has not
        brought yet): a stream taking over from this one without them would not be told of them."""
        return {job_id: seq for job_id, seq in self.positions.items() if seq > self._seen.get(job_id, 0)}

    def take_over(self, other: UpdatesStream) -> None:
        """Go on at ``other``'s pace (its last progress sends)."""
        self.throttle.take_over(other.throttle)

    def close(self) -> None:
        self._stop_listening()

    async def records(self, idle: bool = False) -> AsyncGenerator[JobUpdate | None, None]:
        """The rows to send; with ``idle``, also None after news that brought none (the caller may
        look again whether the stream is ``settled``)."""
        try:
            opening = await self.streams._opening(self.query, self.snapshot, self.since)
            self._opened = True
            async for update in self._hand_out(opening):
                yield update
            live, throttle, seen = self.live, self.throttle, self._seen
            while True:
                message = await live.get(timeout=throttle.wait())
                due = throttle.due()
                if message is not None:
                    record = EventRecord.from_message(message)
                    if self.viewer.scope is None or record.owner_id == self.viewer.scope:
                        seen[record.job_id] = max(seen.get(record.job_id, 0), record.seq)
                        if record.kind == JobEventKind.PROGRESS and not throttle.may_send(record.job_id):
                            throttle.defer(record.job_id)
                        else:
                            due.add(record.job_id)
                rows = await self.streams.rows.current({job_id: seen.get(job_id, 0) for job_id in due}, self.viewer.scope)
                handed = False
                async for update in self._hand_out(rows):
                    handed = True
                    yield update
                if idle and not handed:
                    yield None
        finally:
            self.close()

    async def _hand_out(self, rows: list[JobRow]) -> AsyncIterator[JobUpdate]:
        news = [job for job in rows if self._takes(job)]
        for index, job in enumerate(news):
            self._left = len(news) - index - 1
            self.throttle.sent(job.id)
            yield JobUpdate(job)
        self._left = 0

    def _takes(self, job: JobRow) -> bool:
        """Whether the row is news to send: newer than what the stream has read of the job, and matching."""
        if job.last_seq <= self.positions.get(job.id, 0):
            return False
        self.positions[job.id] = job.last_seq
        return self.accept(job)


class FreshRows:
    """Jobs' rows as of at least a given event, read once for every `jobUpdates` stream that
    wants them: two thousand dashboards told of one event make one read, not two thousand."""

    LIMIT = 10_000

    def __init__(self, db: Database) -> None:
        self.db = db
        self._rows: dict[int, JobRow] = {}
        self._reading: dict[int, asyncio.Future[JobRow | None]] = {}

    async def current(self, wanted: dict[int, int], scope: int | None) -> list[JobRow]:
        """The rows of ``wanted`` (job id -> the seq they must show at least) that ``scope`` may see, by id."""
        found: dict[int, JobRow | None] = {}
        waits: dict[int, asyncio.Future[JobRow | None]] = {}
        missing: list[int] = []
        for job_id, seq in wanted.items():
            row = self._rows.get(job_id)
            if row is not None and row.last_seq >= seq:
                found[job_id] = row
            elif job_id in self._reading:
                waits[job_id] = self._reading[job_id]
            else:
                missing.append(job_id)
        if missing:
            found.update(await self._read(missing))
        for job_id, future in waits.items():
            found[job_id] = await asyncio.shield(future)
        return [row for _, row in sorted(found.items()) if row is not None and (scope is None or row.owner_id == scope)]

    async def _read(self, job_ids: list[int]) -> dict[int, JobRow | None]:
        loop = asyncio.get_running_loop()
        futures = {job_id: loop.create_future() for job_id in job_ids}
        self._reading.update(futures)
        try:
            async with self.db.read() as session:
                rows = await job_store.jobs_by_ids(session, job_ids, None)
        except BaseException as error:
            for future in futures.values():
                future.set_exception(error)
                future.exception()
            raise
        finally:
            for job_id in job_ids:
                self._reading.pop(job_id, None)
        if len(self._rows) > self.LIMIT:
            self._rows.clear()
        result: dict[int, JobRow | None] = {}
        for job_id, future in futures.items():
            row = rows.get(job_id)
            if row is not None:
                self._rows[job_id] = row
            result[job_id] = row
            future.set_result(row)
        return result


class ProgressThrottle:
    """At most one progress update per job per interval; a report that comes sooner waits
    for the end of the interval (then the job's latest state is sent)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}
        self._deferred: dict[int, float] = {}  # job id -> when it may be sent

    def may_send(self, job_id: int) -> bool:
        return time.monotonic() - self._last.get(job_id, float("-inf")) >= self.interval

    def defer(self, job_id: int) -> None:
        self._deferred.setdefault(job_id, self._last.get(job_id, time.monotonic()) + self.interval)

    @property
    def deferred(self) -> bool:
        return bool(self._deferred)

    def take_over(self, other: ProgressThrottle) -> None:
        """Go on from ``other``'s last sends (a stream taking over from another keeps its pace)."""
        self._last.update(other._last)

    def sent(self, job_id: int) -> None:
        self._last[job_id] = time.monotonic()
        self._deferred.pop(job_id, None)
        if len(self._last) > 10_000:  # forget the oldest; a forgotten job may simply be sent once more
            for key in list(self._last)[:5_000]:
                del self._last[key]

    def due(self) -> set[int]:
        """The deferred jobs whose interval has passed (taken off the list)."""
        now = time.monotonic()
        ready = {job_id for job_id, at in self._deferred.items() if at <= now}
        for job_id in ready:
            del self._deferred[job_id]
        return ready

    def wait(self) -> float | None:
        """How long until the next deferred job is due (None: nothing deferred)."""
        if not self._deferred:
            return None
        return max(0.0, min(self._deferred.values()) - time.monotonic())
