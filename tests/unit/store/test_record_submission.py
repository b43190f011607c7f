"""``record_submission`` writes a hand-over's outcome with no read of the job: the center's id for
it, its state and the next sequence number with their event, once, and only while the job is
still unsubmitted (a cancel or another writer's hand-over that got there first wins)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store import jobs as job_store
from store.db import Database
from store.states import JobEventKind, JobState
from store.tables import AccountRow, JobEventRow, JobRow
from tests.unit.store.rows import pending_job

pytestmark = pytest.mark.both_databases


async def new_job(db: Database, reference: str) -> JobRow:
    async with db.transaction() as session:
        account = AccountRow(name=reference)
        session.add(account)
        await session.flush()
        job = pending_job(account.id, reference, last_seq=2)
        await job_store.insert_job(session, job)
        return job


async def test_the_outcome_and_its_event_are_written_with_the_next_sequence_number(db: Database) -> None:
    """As the ledger writes it: a write atomic on its own (one statement in autocommit on PostgreSQL)."""
    job = await new_job(db, "handed")
    async with db.single_write() as connection:
        event = await job_store.record_submission(connection, job.id, "center-7", JobState.QUEUED, "submitted to busy")
    assert event is not None and event.seq == 3 and event.state == JobState.QUEUED and event.kind == JobEventKind.STATE
    async with db.read() as session:
        stored = (await session.execute(select(JobRow).where(JobRow.id == job.id))).scalar_one()
        events = list(await session.scalars(select(JobEventRow).where(JobEventRow.job_id == job.id)))
    assert (stored.external_id, stored.state, stored.last_seq) == ("center-7", JobState.QUEUED, 3)
    assert stored.updated_at == event.at
    assert [(row.seq, row.state, row.message) for row in events] == [(3, JobState.QUEUED, "submitted to busy")]


async def test_a_job_that_moved_on_is_left_as_it_is(db: Database) -> None:
    submitted, cancelled = await new_job(db, "twice"), await new_job(db, "cancelled")
    async with db.transaction() as session:
        assert await job_store.record_submission(session, submitted.id, "first", JobState.QUEUED, "submitted") is not None
        (await session.execute(select(JobRow).where(JobRow.id == cancelled.id))).scalar_one().state = JobState.CANCELLED
    async with db.transaction() as session:
        assert await job_store.record_submission(session, submitted.id, "second", JobState.STARTING, "submitted again") is None
        assert await job_store.record_submission(session, cancelled.id, "late", JobState.QUEUED, "submitted") is None
    async with db.read() as session:
        rows = {row.id: row for row in await session.scalars(select(JobRow).where(JobRow.id.in_([submitted.id, cancelled.id])))}
        events = list(await session.scalars(select(JobEventRow).where(JobEventRow.job_id.in_([submitted.id, cancelled.id]))))
    assert (rows[submitted.id].external_id, rows[submitted.id].state, rows[submitted.id].last_seq) == ("first", JobState.QUEUED, 3)
    assert (rows[cancelled.id].external_id, rows[cancelled.id].state, rows[cancelled.id].last_seq) == (None, JobState.CANCELLED, 2)
    assert [event.message for event in events] == ["submitted"]


async def test_a_job_that_moved_on_is_left_as_it_is_outside_a_transaction_too(db: Database) -> None:
    job = await new_job(db, "gone")
    async with db.transaction() as session:
        (await session.execute(select(JobRow).where(JobRow.id == job.id))).scalar_one().state = JobState.CANCELLED
    async with db.single_write() as connection:
        assert await job_store.record_submission(connection, job.id, "late", JobState.QUEUED, "submitted") is None
    async with db.read() as session:
        stored = (await session.execute(select(JobRow).where(JobRow.id == job.id))).scalar_one()
        events = list(await session.scalars(select(JobEventRow).where(JobEventRow.job_id == job.id)))
    assert (stored.external_id, stored.state, stored.last_seq, events) == (None, JobState.CANCELLED, 2, [])
