"""Jobs and their event log (a per-job sequence number, gap-free and never reused)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import defer, make_transient_to_detached

from store.paging import Page, count_rows, keyset_page
from store.resources import ResourceRequest
from store.states import HOLDING_STATES, TERMINAL_STATES, UNSUBMITTED_STATES, JobEventKind, JobKind, JobState
from store.tables import DatasetReplicaRow, DatasetRow, JobEventRow, JobInputRow, JobRow
from store.types import utcnow

#: a PENDING job without a center this old was orphaned by a crash during placement
ORPHAN_AFTER = timedelta(seconds=15)
#: more ids than this are filtered in Python, not bound into one IN (SQLite caps the bound values of a statement)
MAX_IDS_IN_QUERY = 500


@dataclass(frozen=True)
class JobQuery:
    """Which jobs to list; ``owner_id`` None means every account's (admins)."""

    owner_id: int | None = None
    states: tuple[JobState, ...] = ()
    center_ids: tuple[int, ...] = ()
    kinds: tuple[JobKind, ...] = ()
    name_contains: str | None = None
    input_dataset_id: int | None = None
    #: submitted at or after / strictly before
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None


class JobOrder(enum.StrEnum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"
    COST = "COST"  # what the usage charged, dearest first; jobs not metered (yet) count as 0


@dataclass(frozen=True)
class JobCursor:
    """Where a page of a sorted list starts: after this job (and, sorted by cost, this cost)."""

    id: int
    cost: Decimal | None = None


def _select_jobs(query: JobQuery) -> Select[Any]:
    statement = select(JobRow)
    if query.owner_id is not None:
        statement = statement.where(JobRow.owner_id == query.owner_id)
    if query.states:
        statement = statement.where(JobRow.state.in_(query.states))
    if query.center_ids:
        statement = statement.where(JobRow.center_id.in_(query.center_ids))
    if query.kinds:
        statement = statement.where(JobRow.kind.in_(query.kinds))
    if query.name_contains:
        pattern = "%" + query.name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(JobRow.name.ilike(pattern, escape="\\"))
    if query.input_dataset_id is not None:
        statement = statement.join(JobInputRow, JobInputRow.job_id == JobRow.id).where(JobInputRow.dataset_id == query.input_dataset_id)
    if query.submitted_after is not None:
        statement = statement.where(JobRow.submitted_at >= query.submitted_after)
    if query.submitted_before is not None:
        statement = statement.where(JobRow.submitted_at < query.submitted_before)
    return statement


async def sorted_jobs_page(
    session: AsyncSession, query: JobQuery, order: JobOrder, *, first: int, after: JobCursor | None
) -> Page[tuple[JobRow, Decimal]]:
    """One keyset page of the jobs in ``order``, each with what it cost (0 until metered).

    NEWEST and OLDEST are keyed on the id; COST on (cost, id), both descending, so a page
    starts exactly after the last row of the one before whatever was added meanwhile
    (``jobs.cost`` is written with the usage record; ix_jobs_owner_id_cost_id serves the order)."""
    statement = _select_jobs(query)
    if order == JobOrder.COST:
        if after is not None:
            at = after.cost if after.cost is not None else Decimal(0)
            # a row comparison: both databases read it as one range of ix_jobs_owner_id_cost_id
            # (the cost bound with the column's type: millionths on SQLite)
            bound = tuple_(literal(at, type_=JobRow.cost.type), literal(after.id, type_=JobRow.id.type))
            statement = statement.where(tuple_(JobRow.cost, JobRow.id) < bound)
        statement = statement.order_by(JobRow.cost.desc(), JobRow.id.desc())
    elif order == JobOrder.OLDEST:
        if after is not None:
            statement = statement.where(JobRow.id > after.id)
        statement = statement.order_by(JobRow.id.asc())
    else:
        if after is not None:
            statement = statement.where(JobRow.id < after.id)
        statement = statement.order_by(JobRow.id.desc())
    rows = [(row, row.cost) for row in (await session.scalars(statement.limit(first + 1))).all()]
    return Page(rows=rows[:first], has_next=len(rows) > first, has_previous=after is not None)


async def jobs_page(session: AsyncSession, query: JobQuery, *, first: int, after: int | None) -> Page[JobRow]:
    return await keyset_page(session, _select_jobs(query), JobRow.id, first=first, after=after)


async def jobs_changed_since(session: AsyncSession, query: JobQuery, since: datetime, limit: int) -> list[JobRow]:
    """The matching jobs changed at or after ``since``, oldest change first."""
    statement = _select_jobs(query).where(JobRow.updated_at >= since).order_by(JobRow.updated_at, JobRow.id).limit(limit)
    return list(await session.scalars(statement))


async def count_jobs(session: AsyncSession, query: JobQuery) -> int:
    return await count_rows(session, _select_jobs(query))


async def jobs_by_ids(session: AsyncSession, ids: Iterable[int], owner_id: int | None = None) -> dict[int, JobRow]:
    statement = select(JobRow).where(JobRow.id.in_(list(ids)))
    if owner_id is not None:
        statement = statement.where(JobRow.owner_id == owner_id)
    return {row.id: row for row in await session.scalars(statement)}


async def find_by_idempotency_key(session: AsyncSession, owner_id: int, key: str) -> JobRow | None:
    return await session.scalar(select(JobRow).where(JobRow.owner_id == owner_id, JobRow.idempotency_key == key))


async def claim_idempotency_key(session: AsyncSession, owner_id: int, key: str) -> JobRow | None:
    """The job already made under ``key``, read after taking the key for the rest of the transaction.

    On PostgreSQL twins submitted at once queue on an advisory lock of (owner, key), so the
    second one finds the first one's job instead of deadlocking on or violating the unique
    key; SQLite writes one transaction at a time anyway.
    """
    if _on_postgresql(session):
        await session.execute(select(func.pg_advisory_xact_lock(owner_id, func.hashtext(key))))
    return await find_by_idempotency_key(session, owner_id, key)


async def lock_job(session: AsyncSession, job_id: int) -> JobRow | None:
    """The job, locked for the rest of the transaction (FOR UPDATE where the database has it)."""
    return await session.scalar(select(JobRow).where(JobRow.id == job_id).with_for_update().execution_options(populate_existing=True))


async def lock_jobs(session: AsyncSession, job_ids: Sequence[int]) -> dict[int, JobRow]:
    """The jobs (at most ``MAX_IDS_IN_QUERY``), locked for the rest of the transaction, taken in id
    order (two writers locking overlapping sets on PostgreSQL cannot deadlock), by id."""
    query = select(JobRow).where(JobRow.id.in_(list(job_ids))).order_by(JobRow.id).with_for_update()
    return {row.id: row for row in await session.scalars(query.execution_options(populate_existing=True))}


@dataclass(frozen=True, slots=True)
class JobGlance:
    """What a reconciler round reads of each of a center's unfinished jobs: enough to ask the
    center about it and to tell whether its answer changes anything (the whole row is read then)."""

    id: int
    external_id: str | None
    state: JobState
    started_at: datetime | None
    progress_count: int
    updated_at: datetime

    @classmethod
    def of(cls, job: JobRow) -> JobGlance:
        """The glance at a row in hand (the one a hand-over has just written): no read."""
        return cls(job.id, job.external_id, job.state, job.started_at, job.progress_count, job.updated_at)


_GLANCES = (
    select(JobRow.id, JobRow.external_id, JobRow.state, JobRow.started_at, JobRow.progress_count, JobRow.updated_at)
    .where(JobRow.center_id == bindparam("center_id"), JobRow.state.not_in(TERMINAL_STATES))
    .order_by(JobRow.id)
)
_GLANCES_OF_EXTERNAL_IDS = _GLANCES.where(JobRow.external_id.in_(bindparam("external_ids", expanding=True)))


async def unfinished_glances(session: AsyncSession, center_id: int, external_ids: Collection[str] | None = None) -> list[JobGlance]:
    """A glance at each of a center's unfinished jobs (those of ``external_ids`` only, when given), in
    one Core read: a busy center's every queued job, every poll, without building an ORM row nor
    decoding a document for each."""
    parameters: dict[str, Any] = {"center_id": center_id}
    query = _GLANCES
    if external_ids is not None and len(external_ids) <= MAX_IDS_IN_QUERY:
        query = _GLANCES_OF_EXTERNAL_IDS
        parameters["external_ids"] = list(external_ids)
    glances = [JobGlance(*row) for row in await session.execute(query, parameters)]
    return glances if external_ids is None else [glance for glance in glances if glance.external_id in external_ids]


#: documents a reconciler never reads of the rows it reads whole (it plans against the rows it
#: locks): left unloaded, and reading one raises instead of loading it
ROUND_UNREAD = (JobRow.command, JobRow.environment, JobRow.placement, JobRow.progress, JobRow.via)
_LEAN_BY_ID = (
    select(JobRow)
    .where(
        JobRow.center_id == bindparam("center_id"), JobRow.state.not_in(TERMINAL_STATES), JobRow.id.in_(bindparam("ids", expanding=True))
    )
    .options(*(defer(column, raiseload=True) for column in ROUND_UNREAD))
)


async def unfinished_jobs_by_id(session: AsyncSession, center_id: int, job_ids: Collection[int]) -> list[JobRow]:
    """The rows, without the documents in ``ROUND_UNREAD``, of those of ``job_ids`` (at most
    ``MAX_IDS_IN_QUERY``) still unfinished on the center."""
    return list(await session.scalars(_LEAN_BY_ID, {"center_id": center_id, "ids": list(job_ids)}))


def append_event(
    session: AsyncSession,
    job: JobRow,
    kind: JobEventKind,
    *,
    state: JobState | None = None,
    progress: dict[str, Any] | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> JobEventRow:
    """Add the job's next event; the caller holds the job's row lock and commits."""
    job.last_seq += 1
    job.updated_at = utcnow()
    event = JobEventRow(job_id=job.id, seq=job.last_seq, at=at or utcnow(), kind=kind, state=state, progress=progress, message=message)
    session.add(event)
    return event


_JOBS = cast(Table, JobRow.__table__)
_INSERT_JOB = insert(_JOBS).returning(_JOBS.c.id)
#: (attribute, column) of every column a new job's INSERT writes
_JOB_COLUMNS = tuple((attribute.key, attribute.columns[0]) for attribute in JobRow.__mapper__.column_attrs if attribute.key != "id")


async def insert_job(session: AsyncSession, job: JobRow) -> None:
    """Write a new job in one INSERT ... RETURNING its id, without the ORM's unit of work (a submit's
    dearest statement through it). Columns left unset take their defaults here, so ``job`` comes back
    whole, its id set, as a flushed and committed row would: detached, nothing left to load."""
    fields = job.__dict__
    for key, column in _JOB_COLUMNS:
        if key not in fields:
            default = column.default
            value = None if default is None else default.arg(None) if default.is_callable else default.arg
            setattr(job, key, value)
    values = {column.key: fields[key] for key, column in _JOB_COLUMNS}
    job.id = (await session.execute(_INSERT_JOB, values)).scalar_one()
    make_transient_to_detached(job)


async def first_events(session: AsyncSession, job: JobRow, events: Sequence[Mapping[str, Any]]) -> list[JobEventRow]:
    """Write the events of a job inserted just now with ``last_seq = len(events)`` already set, in one
    statement; the job row needs no UPDATE after them (``append_event`` would bump ``last_seq`` again)."""
    assert job.id is not None and job.last_seq == len(events), "insert the job with last_seq = the number of its first events"
    at = utcnow()
    values = [
        {
            "job_id": job.id,
            "seq": seq,
            "at": at,
            "kind": event["kind"],
            "state": event.get("state"),
            "progress": None,
            "message": event.get("message"),
        }
        for seq, event in enumerate(events, start=1)
    ]
    await session.execute(_INSERT_EVENT, values)
    return [JobEventRow(**value) for value in values]


#: a hand-over's outcome, built once (a hand-over is on every submit's path); on the table, not the
#: ORM class: the ORM-enabled UPDATE took a third more CPU a hand-over (864 against 656 µs), for nothing used here
_HAND_OVER = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.external_id.is_(None), _JOBS.c.state.in_(UNSUBMITTED_STATES))
    .values(
        external_id=bindparam("new_external_id", type_=_JOBS.c.external_id.type),
        state=bindparam("new_state", type_=_JOBS.c.state.type),
        last_seq=_JOBS.c.last_seq + 1,
        updated_at=bindparam("new_updated_at", type_=_JOBS.c.updated_at.type),
    )
)
_RECORD_SUBMISSION = _HAND_OVER.returning(_JOBS.c.last_seq)
_EVENTS = cast(Table, JobEventRow.__table__)
_INSERT_EVENT = insert(_EVENTS).execution_options(render_nulls=True)
#: on PostgreSQL the hand-over's outcome and its event in one statement, atomic on its own (the UPDATE
#: in a CTE, the INSERT reading the sequence number it took): no transaction around it, one round trip
_HANDED = _HAND_OVER.returning(_JOBS.c.id, _JOBS.c.last_seq).cte("handed")
_RECORD_SUBMISSION_AT_ONCE = (
    insert(_EVENTS)
    .from_select(
        ["job_id", "seq", "at", "kind", "state", "message"],
        select(
            _HANDED.c.id,
            _HANDED.c.last_seq,
            bindparam("event_at", type_=_EVENTS.c.at.type),
            bindparam("event_kind", type_=_EVENTS.c.kind.type),
            bindparam("event_state", type_=_EVENTS.c.state.type),
            bindparam("event_message", type_=_EVENTS.c.message.type),
        ),
    )
    .returning(_EVENTS.c.seq)
)


async def record_submission(
    session: AsyncSession | AsyncConnection, job_id: int, external_id: str, state: JobState, message: str
) -> JobEventRow | None:
    """A hand-over's outcome, the center's id for the job and its new state with their STATE event,
    with no read of the job: written only while the job is still unsubmitted (no cancel or other
    hand-over got there first), its next sequence number taken by the UPDATE itself. The event
    written, or None when the job had moved on.

    On PostgreSQL it is one statement, atomic on its own: ``session`` may be a connection in
    autocommit (``Database.single_write``). Elsewhere two, in the transaction ``session`` is in."""
    at = utcnow()
    moved = {"job_id": job_id, "new_external_id": external_id, "new_state": state, "new_updated_at": at}
    if _on_postgresql(session):
        event = {"event_at": at, "event_kind": JobEventKind.STATE, "event_state": state, "event_message": message}
        seq = await session.scalar(_RECORD_SUBMISSION_AT_ONCE, {**moved, **event})
        if seq is None:
            return None
    else:
        seq = await session.scalar(_RECORD_SUBMISSION, moved)
        if seq is None:
            return None
        await session.execute(_INSERT_EVENT, [_state_event(job_id, seq, at, state, message)])
    return JobEventRow(**_state_event(job_id, seq, at, state, message))


def _on_postgresql(session: AsyncSession | AsyncConnection) -> bool:
    bind = session if isinstance(session, AsyncConnection) else session.get_bind()
    return bind.dialect.name == "postgresql"


def _state_event(job_id: int, seq: int, at: datetime, state: JobState, message: str) -> dict[str, Any]:
    return {"job_id": job_id, "seq": seq, "at": at, "kind": JobEventKind.STATE, "state": state, "progress": None, "message": message}


async def events_after(session: AsyncSession, job_id: int, after: int, limit: int) -> list[JobEventRow]:
    rows = await session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after).order_by(JobEventRow.seq).limit(limit)
    )
    return list(rows)


async def set_inputs(session: AsyncSession, job_id: int, dataset_ids: Sequence[int]) -> None:
    session.add_all(JobInputRow(job_id=job_id, dataset_id=dataset_id) for dataset_id in dict.fromkeys(dataset_ids))


async def inputs_by_jobs(session: AsyncSession, job_ids: Sequence[int]) -> dict[int, list[DatasetRow]]:
    rows = await session.execute(
        select(JobInputRow.job_id, DatasetRow)
        .join(DatasetRow, DatasetRow.id == JobInputRow.dataset_id)
        .where(JobInputRow.job_id.in_(job_ids))
        .order_by(DatasetRow.id)
    )
    grouped: dict[int, list[DatasetRow]] = {job_id: [] for job_id in job_ids}
    for job_id, dataset in rows:
        grouped[job_id].append(dataset)
    return grouped


def _waiting() -> Any:
    orphaned = and_(JobRow.state == JobState.PENDING, JobRow.updated_at < utcnow() - ORPHAN_AFTER)
    return and_(JobRow.center_id.is_(None), JobRow.external_id.is_(None), or_(JobRow.state == JobState.QUEUED, orphaned))


async def waiting_jobs(session: AsyncSession, limit: int) -> list[JobRow]:
    """Jobs waiting at the network level for a center: the ``limit`` of highest priority and
    the ``limit`` oldest (which aging may have raised above them), in submission order."""
    by_priority = await session.scalars(select(JobRow).where(_waiting()).order_by(JobRow.priority.desc(), JobRow.id).limit(limit))
    found = {row.id: row for row in by_priority}
    for row in await session.scalars(select(JobRow).where(_waiting()).order_by(JobRow.id).limit(limit)):
        found.setdefault(row.id, row)
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True)
class WaitingKey:
    id: int
    priority: int
    submitted_at: datetime


async def waiting_keys(session: AsyncSession, limit: int) -> list[WaitingKey]:
    """What orders the network queue, of every waiting job (up to ``limit``, oldest first)."""
    rows = await session.execute(select(JobRow.id, JobRow.priority, JobRow.submitted_at).where(_waiting()).order_by(JobRow.id).limit(limit))
    return [WaitingKey(key, priority, submitted_at) for key, priority, submitted_at in rows]


async def count_by_state(session: AsyncSession, query: JobQuery) -> dict[JobState, int]:
    """How many of the jobs ``query`` matches are in each state, counted by the database."""
    matching = _select_jobs(query).order_by(None).subquery()
    rows = await session.execute(select(matching.c.state, func.count()).group_by(matching.c.state))
    return {JobState(state): int(count) for state, count in rows}


#: the states of a job a center holds that has not started running yet
CENTER_QUEUED_STATES = (JobState.PENDING, JobState.QUEUED, JobState.STARTING)


async def queue_lengths(session: AsyncSession, center_ids: Sequence[int]) -> dict[int, int]:
    """How many jobs placed at each center wait there to start."""
    rows = await session.execute(
        select(JobRow.center_id, func.count())
        .where(JobRow.center_id.in_(center_ids), JobRow.state.in_(CENTER_QUEUED_STATES))
        .group_by(JobRow.center_id)
    )
    found = {center_id: int(count) for center_id, count in rows}
    return {center_id: found.get(center_id, 0) for center_id in center_ids}


async def active_allocations(session: AsyncSession) -> list[tuple[int | None, ResourceRequest, datetime | None]]:
    """(center, request, started) of every job holding devices at a center."""
    rows = await session.execute(
        select(JobRow.center_id, JobRow.request, JobRow.started_at).where(JobRow.state.in_(HOLDING_STATES), JobRow.external_id.is_not(None))
    )
    return [(center_id, request, started_at) for center_id, request, started_at in rows]


async def units_in_use(session: AsyncSession, owner_id: int, units_per_device: Mapping[str, float]) -> float:
    """Standard units the account's jobs hold at centers now."""
    rows = await session.scalars(
        select(JobRow.request).where(JobRow.owner_id == owner_id, JobRow.state.in_(HOLDING_STATES), JobRow.center_id.is_not(None))
    )
    return sum(units_per_device.get(request.accelerator or "", 0.0) * int(request.devices or 1) for request in rows)


async def input_replicas_by_center(session: AsyncSession, job_id: int) -> dict[int, int]:
    """How many of the job's input datasets each center holds a verified replica of."""
    rows = await session.execute(
        select(DatasetReplicaRow.center_id, func.count(func.distinct(DatasetReplicaRow.dataset_id)))
        .join(JobInputRow, JobInputRow.dataset_id == DatasetReplicaRow.dataset_id)
        .where(JobInputRow.job_id == job_id, DatasetReplicaRow.state == "VERIFIED")
        .group_by(DatasetReplicaRow.center_id)
    )
    return {center_id: int(count) for center_id, count in rows}


async def input_bytes_by_center(session: AsyncSession, dataset_ids: Sequence[int]) -> tuple[int, dict[int, int]]:
    """(bytes of all these datasets, bytes of them each center holds a verified replica of)."""
    if not dataset_ids:
        return 0, {}
    total = await session.scalar(select(func.coalesce(func.sum(DatasetRow.size_bytes), 0)).where(DatasetRow.id.in_(dataset_ids)))
    rows = await session.execute(
        select(DatasetReplicaRow.center_id, func.coalesce(func.sum(DatasetRow.size_bytes), 0))
        .join(DatasetRow, DatasetRow.id == DatasetReplicaRow.dataset_id)
        .where(DatasetReplicaRow.dataset_id.in_(dataset_ids), DatasetReplicaRow.state == "VERIFIED")
        .group_by(DatasetReplicaRow.center_id)
    )
    return int(total or 0), {center_id: int(held or 0) for center_id, held in rows}


async def replicas_by_center(session: AsyncSession, dataset_ids: Sequence[int]) -> dict[int, int]:
    """How many of these datasets each center holds a verified replica of (a claimed copy does not count)."""
    if not dataset_ids:
        return {}
    rows = await session.execute(
        select(DatasetReplicaRow.center_id, func.count(func.distinct(DatasetReplicaRow.dataset_id)))
        .where(DatasetReplicaRow.dataset_id.in_(dataset_ids), DatasetReplicaRow.state == "VERIFIED")
        .group_by(DatasetReplicaRow.center_id)
    )
    return {center_id: int(count) for center_id, count in rows}
