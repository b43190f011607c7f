"""``insert_job`` writes a new job in one Core INSERT: the row read back is the object it was given,
column for column, with the columns it left unset at their defaults, as the ORM's flush would write."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store import jobs as job_store
from store.db import Database
from store.resources import ResourceRequest
from store.states import JobKind, JobState
from store.tables import AccountRow, JobRow
from tests.unit.store.rows import pending_job

pytestmark = pytest.mark.both_databases


async def test_the_row_read_back_is_the_job_it_was_given_with_defaults_filled(db: Database) -> None:
    async with db.transaction() as session:
        account = AccountRow(name="ada")
        session.add(account)
        await session.flush()
        job = JobRow(
            owner_id=account.id,
            reference="aicn-insert-1",
            name="trivial",
            kind=JobKind.BATCH,
            state=JobState.PENDING,
            request=ResourceRequest(max_duration_minutes=5),
            command=["python", "-c", "print(1)"],
            environment={"A": "1"},
        )
        await job_store.insert_job(session, job)
        assert job.id is not None and job.priority == 0 and job.cost == Decimal(0) and job.progress_count == 0
        assert job.submitted_at is not None and job.updated_at is not None
    async with db.read() as session:
        stored = (await session.execute(select(JobRow).where(JobRow.id == job.id))).scalar_one()
    columns = [attribute.key for attribute in JobRow.__mapper__.column_attrs]
    assert {key: getattr(stored, key) for key in columns} == {key: getattr(job, key) for key in columns}


async def test_two_jobs_get_their_own_ids_and_a_taken_reference_is_refused(db: Database) -> None:
    async with db.transaction() as session:
        account = AccountRow(name="bob")
        session.add(account)
        await session.flush()

        first, second = pending_job(account.id, "aicn-a"), pending_job(account.id, "aicn-b")
        await job_store.insert_job(session, first)
        await job_store.insert_job(session, second)
        assert second.id != first.id
    async with db.read() as session:
        stored = (await session.execute(select(JobRow.id, JobRow.reference).order_by(JobRow.id))).all()
    assert [tuple(row) for row in stored] == [(first.id, "aicn-a"), (second.id, "aicn-b")]
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await job_store.insert_job(session, pending_job(account.id, "aicn-a"))
