"""The job ledger: every change to a job is written with its events in one transaction,
then announced on the bus. Nothing else writes job state.

``plan_changes`` is the pure part: given what the database holds and what the center
reports, which events to append, in order (missed intermediate states are filled in, so
subscribers always see PENDING → STARTING → RUNNING → end).

Whichever path ends a job, its end is metered here, in the same transaction: the
``Meter`` writes the usage record and returns a USAGE event, which goes before the
terminal STATE event (subscriptions end after that one).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.base import CenterJobState, JobStatus, ProgressReport
from resolvers.billing.metering import Settlement
from resolvers.common.ids import to_global_id
from resolvers.common.leases import Fence
from resolvers.data.outputs import OutputCatcher
from resolvers.jobs.states import TERMINAL_STATES, JobEventKind, JobState
from resolvers.webhooks.events import EventKind
from resolvers.webhooks.outbox import enqueue_event
from store import jobs as job_store
from store.bus import InMemoryBus
from store.db import Database
from store.tables import JobEventRow, JobRow
from store.types import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

#: a writer that lost a race (a unique constraint fired) plans again against the winner's rows
RACE_ATTEMPTS = 3
_RANK = {JobState.PENDING: 0, JobState.QUEUED: 1, JobState.STARTING: 2, JobState.RUNNING: 3, JobState.CANCELLING: 4}
_FROM_CENTER = {
    CenterJobState.QUEUED: JobState.QUEUED,
    CenterJobState.STARTING: JobState.STARTING,
    CenterJobState.RUNNING: JobState.RUNNING,
    CenterJobState.SUCCEEDED: JobState.SUCCEEDED,
    CenterJobState.FAILED: JobState.FAILED,
    CenterJobState.CANCELLED: JobState.CANCELLED,
}


@dataclass(frozen=True)
class EventRecord:
    """A committed job event, as subscribers receive it."""

    job_id: int
    owner_id: int
    seq: int
    at: datetime
    kind: JobEventKind
    state: JobState | None = None
    progress: dict[str, Any] | None = None
    message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.kind == JobEventKind.STATE and self.state in TERMINAL_STATES

    @classmethod
    def from_row(cls, row: JobEventRow, owner_id: int) -> EventRecord:
        return cls(row.job_id, owner_id, row.seq, row.at, row.kind, row.state, row.progress, row.message)

    def to_message(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "owner_id": self.owner_id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> EventRecord:
        state = message.get("state")
        return cls(
            job_id=int(message["job_id"]),
            owner_id=int(message["owner_id"]),
            seq=int(message["seq"]),
            at=datetime.fromisoformat(message["at"]),
            kind=JobEventKind(message["kind"]),
            state=JobState(state) if state is not None else None,
            progress=message.get("progress"),
            message=message.get("message"),
        )


@dataclass
class Change:
    """Events to append and columns to set on one job."""

    events: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)

    def state(self, state: JobState, message: str | None = None, at: datetime | None = None) -> None:
        self.events.append({"kind": JobEventKind.STATE, "state": state, "message": message, "at": at})
        self.columns["state"] = state

    def __bool__(self) -> bool:
        return bool(self.events or self.columns)


def progress_document(report: ProgressReport) -> dict[str, Any]:
    return {
        "fraction": report.fraction,
        "step": report.step,
        "totalSteps": report.total_steps,
        "message": report.message,
        "metrics": dict(report.metrics) if report.metrics is not None else None,
        "at": report.at.isoformat(),
    }


def plan_changes(job: JobRow | job_store.JobGlance, status: JobStatus) -> Change:
    """The events that bring ``job`` from its recorded state to what its center reports (of the row,
    it reads the state, ``started_at`` and ``progress_count``: a round's glance at a job will do)."""
    change = plan_lead_up(job, status)
    target = _FROM_CENTER[status.state]
    if job.state not in TERMINAL_STATES and target in TERMINAL_STATES:
        change.columns["exit_code"] = status.exit_code
        change.columns["finished_at"] = status.finished_at or utcnow()
        if target != JobState.SUCCEEDED:
            change.columns["failure_reason"] = status.reason or target.value
        change.state(target, status.reason)
    return change


def plan_lead_up(job: JobRow | job_store.JobGlance, status: JobStatus) -> Change:
    """``plan_changes`` without the end the center reports, if it reports one: the start and the
    progress lines before it (all of it for a job still going). A reconciler writes an ending job's
    last lines with the other jobs' progress, so they do not wait for its end's own transaction."""
    change = Change()
    current = job.state
    if current in TERMINAL_STATES:
        return change
    target = _FROM_CENTER[status.state]
    ran = status.started_at is not None or bool(status.progress) or target == JobState.RUNNING
    cancelling = current == JobState.CANCELLING

    if not cancelling and target not in TERMINAL_STATES and target != current:
        if _RANK[target] > _RANK[current]:
            if target == JobState.RUNNING and _RANK[current] < _RANK[JobState.STARTING]:
                change.state(JobState.STARTING)
            change.state(target)
        else:
            change.state(target, "requeued by the center")
    elif not cancelling and target in TERMINAL_STATES:
        if target != JobState.CANCELLED or ran:
            if _RANK[current] < _RANK[JobState.STARTING]:
                change.state(JobState.STARTING)
            if ran and _RANK[current] < _RANK[JobState.RUNNING]:
                change.state(JobState.RUNNING)

    if ran and job.started_at is None:
        change.columns["started_at"] = status.started_at or utcnow()
    new_reports = [report for report in status.progress if report.ordinal > job.progress_count]
    for report in new_reports:
        document = progress_document(report)
        change.events.append({"kind": JobEventKind.PROGRESS, "progress": document, "message": report.message, "at": report.at})
    if new_reports:
        change.columns["progress"] = progress_document(new_reports[-1])
        change.columns["progress_count"] = new_reports[-1].ordinal
    return change


def job_ended(job: JobRow) -> dict[str, Any]:
    """The data of a JOB_ENDED webhook event."""
    return {
        "jobId": to_global_id("Job", job.id),
        "name": job.name,
        "state": JobState(job.state).value,
        "exitCode": job.exit_code,
        "failureReason": job.failure_reason,
        "centerId": to_global_id("ComputeCenter", job.center_id) if job.center_id is not None else None,
        "submittedAt": job.submitted_at.isoformat(),
        "startedAt": job.started_at.isoformat() if job.started_at else None,
        "finishedAt": job.finished_at.isoformat() if job.finished_at else None,
    }


async def _planning_again(write: Callable[[], Awaitable[T]], what: str) -> T:
    """``write`` again while another writer wins a race on ``what`` (a unique constraint refuses ours)."""
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return await write()
        except IntegrityError:
            if attempt == RACE_ATTEMPTS:
                raise
            log.info("%s was changed by another writer; planning again", what)
    raise AssertionError("unreachable")


class Meter(Protocol):
    async def settle(self, session: AsyncSession, job: JobRow) -> Settlement:
        """Meter ``job``, whose terminal columns are set, inside the caller's transaction."""
        ...


class JobLedger:
    def __init__(self, db: Database, bus: InMemoryBus, meter: Meter | None = None, outputs: OutputCatcher | None = None) -> None:
        self.db = db
        self.bus = bus
        self.meter = meter
        #: registers what a successful job asked to keep from its AICN_OUTPUT_DIR
        self.outputs = outputs

    async def apply(self, job_id: int, planner: Any, fence: Fence | None = None) -> tuple[JobRow | None, list[EventRecord]]:
        """Lock the job, let ``planner(job) -> Change`` decide, write it, then announce it.

        With ``fence`` (a loop that runs under a lease), nothing is written unless the lease is
        still this replica's inside the same transaction.

        Another writer (a second gateway, or SQLite, where the lock is only in-process) may
        change the job between our read and our write; the unique constraints on event
        sequence numbers and usage records then refuse ours, and we plan again.
        """
        return await _planning_again(lambda: self._apply_once(job_id, planner, fence), f"job {job_id}")

    async def _apply_once(self, job_id: int, planner: Any, fence: Fence | None) -> tuple[JobRow | None, list[EventRecord]]:
        notices: list[tuple[str, dict[str, Any]]] = []
        async with self.db.transaction() as session:
            job = await job_store.lock_job(session, job_id)
            if job is None:
                return None, []
            if fence is not None and not await fence(session):
                return job, []
            change: Change = planner(job)
            if not change:
                return job, []
            rows = await self._write(session, job, change, notices)
            await session.flush()
            records = [EventRecord.from_row(row, job.owner_id) for row in rows]
        await self._send(records, notices)
        return job, records

    async def record_submission(self, job: JobRow, external_id: str, state: JobState, message: str) -> JobRow | None:
        """Record that ``job``'s center took it, as ``external_id`` there, now ``state``: one statement on
        PostgreSQL (two on SQLite) and no read of the row (``job_store.record_submission``); a hand-over
        is on every submit's path. ``job`` (its id and owner) comes back as written, or None when the job
        had moved on meanwhile (cancelled, handed over by another writer) and nothing was written."""
        async with self.db.single_write() as connection:
            row = await job_store.record_submission(connection, job.id, external_id, state, message)
        if row is None:
            return None
        job.external_id, job.state, job.last_seq, job.updated_at = external_id, state, row.seq, row.at
        await self.announce([EventRecord.from_row(row, job.owner_id)])
        return job

    async def apply_many(self, planners: Mapping[int, Any], fence: Fence | None = None) -> dict[int, JobRow | None]:
        """``apply`` for several jobs (at most ``job_store.MAX_IDS_IN_QUERY``) in one transaction: one
        lock of their rows, one fence check, one commit, then each job's events announced in order.
        A reconciler round over a busy center writes every job's progress at once instead of waiting
        for a transaction per job. All or nothing: an error leaves every job as it was."""
        return await _planning_again(lambda: self._apply_many_once(planners, fence), f"one of jobs {sorted(planners)}")

    async def _apply_many_once(self, planners: Mapping[int, Any], fence: Fence | None) -> dict[int, JobRow | None]:
        notices: list[tuple[str, dict[str, Any]]] = []
        written: list[tuple[JobRow, list[JobEventRow]]] = []
        async with self.db.transaction() as session:
            jobs = await job_store.lock_jobs(session, list(planners))
            found: dict[int, JobRow | None] = {job_id: jobs.get(job_id) for job_id in planners}
            if fence is not None and not await fence(session):
                return found
            for job_id, planner in planners.items():
                job = jobs.get(job_id)
                if job is None:
                    continue
                change: Change = planner(job)
                if change:
                    written.append((job, await self._write(session, job, change, notices)))
            if not written:
                return found
            await session.flush()
            records = [EventRecord.from_row(row, job.owner_id) for job, rows in written for row in rows]
        await self._send(records, notices)
        return found

    async def _write(
        self, session: AsyncSession, job: JobRow, change: Change, notices: list[tuple[str, dict[str, Any]]]
    ) -> list[JobEventRow]:
        for column, value in change.columns.items():
            setattr(job, column, value)
        rows: list[JobEventRow] = []
        for event in change.events:
            if self.meter is not None and event["kind"] == JobEventKind.STATE and event["state"] in TERMINAL_STATES:
                settlement = await self.meter.settle(session, job)
                if settlement.usage_message is not None:
                    rows.append(job_store.append_event(session, job, JobEventKind.USAGE, message=settlement.usage_message))
                notices.extend(settlement.notices)
            if self.outputs is not None and event["kind"] == JobEventKind.STATE and event["state"] == JobState.SUCCEEDED:
                refused = await self.outputs.register(session, job)
                if refused is not None:
                    rows.append(job_store.append_event(session, job, JobEventKind.LOG, message=refused))
            rows.append(job_store.append_event(session, job, **event))
            if event["kind"] == JobEventKind.STATE and event["state"] in TERMINAL_STATES:
                notices.extend(await enqueue_event(session, job.owner_id, EventKind.JOB_ENDED, job_ended(job)))
        return rows

    async def _send(self, records: Sequence[EventRecord], notices: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """After the commit: the events to their subscribers, then what the write asked to tell (alerts, webhooks)."""
        await self.announce(records)
        for channel, message in notices:
            await self.bus.publish(channel, message)

    async def announce(self, records: Sequence[EventRecord]) -> None:
        for record in records:
            message = record.to_message()
            await self.bus.publish(f"job:{record.job_id}", message)
            await self.bus.publish("jobs", message)
